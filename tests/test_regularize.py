"""Regularizers against their formulas and against plain fine-tuning, on tiny models (seconds)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from ftkit.experiments.analysis import generalization_gap
from ftkit.models.groups import head_name
from ftkit.train.loop import fit
from ftkit.tuning.freeze import freeze
from ftkit.tuning.regularize import (
    EWC,
    L1,
    L2SP,
    DropoutLinear,
    Rehearsal,
    add_dropout_before_head,
    diagonal_fisher,
    set_dropout,
)

pytestmark = pytest.mark.usefixtures("one_thread")



def mlp(dropout=0.0, bn=False, seed=1):
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 16), nn.BatchNorm1d(16) if bn else nn.Identity(), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(nn.Sequential(*layers), nn.Linear(16, 3))


def blobs(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return TensorDataset(x, y)


def value(regularizer, model) -> float:
    return float(regularizer.penalty(model).detach())


def squares(module) -> float:
    return sum(float(p.detach().pow(2).sum()) for p in module.parameters())


def perturb(module, scale=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def test_l2sp_is_zero_at_the_start_and_its_gradient_points_back():
    model = mlp()
    l2sp = L2SP(model, alpha=0.5, beta=0.1)
    head = model[1]
    assert value(l2sp, model) == pytest.approx(0.05 * squares(head))
    assert value(L2SP(model, beta=0.0), model) == 0  # exactly 0 for the pre-trained part
    start = [p.detach().clone() for p in model[0].parameters()]
    perturb(model[0])
    model.zero_grad()
    l2sp.penalty(model).backward()
    for p, w0 in zip(model[0].parameters(), start):
        torch.testing.assert_close(p.grad, 0.5 * (p.detach() - w0))  # alpha (w - w0)
        assert float((-p.grad * (p.detach() - w0)).sum()) < 0  # a step down the gradient goes back to w0
    torch.testing.assert_close(head.weight.grad, 0.1 * head.weight.detach())  # beta w for the new head
    freeze(model, r"^0\.")  # frozen parameters do not count
    assert value(l2sp, model) == pytest.approx(0.05 * squares(head))


def test_l2sp_treats_parameters_it_has_not_seen_as_new():
    model = mlp()
    l2sp = L2SP(model, alpha=1.0, beta=0.0)
    model[0][0] = nn.Linear(6, 16)  # same name and shape: compared with the snapshot
    assert value(l2sp, model) > 0
    model.extra = nn.Linear(2, 2)  # not in the snapshot, like LoRA or adapter weights: plain L2 (beta = 0 here)
    assert value(l2sp, model) == pytest.approx(value(L2SP(mlp(), 1.0, 0.0), model))


def test_l1_is_the_sum_of_absolute_trainable_weights():
    model = mlp()
    freeze(model)  # only the head's weight matrix counts (biases never)
    assert value(L1(0.01), model) == pytest.approx(0.01 * float(model[1].weight.detach().abs().sum()))


def test_fisher_is_the_mean_squared_per_example_gradient():
    model = mlp()
    data = blobs(20)
    fisher = diagonal_fisher(model, data, samples=20, batch_size=7)
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x, y in (data[i] for i in range(len(data))):
        model.zero_grad()
        F.cross_entropy(model(x[None]), y[None]).backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad ** 2 / 20
    for n in expected:
        torch.testing.assert_close(fisher[n], expected[n])


def test_ewc_penalty_formula_and_shared_parameters_only():
    model = mlp()
    ewc = EWC(model, blobs(), lam=10.0, samples=32)
    assert set(ewc.fisher) == {"0.0.weight", "0.0.bias"}  # the source head is not shared
    assert value(ewc, model) == 0
    perturb(model)
    expected = 5.0 * sum(float((ewc.fisher[n] * (p.detach() - ewc.anchor[n]).pow(2)).sum())
                         for n, p in model.named_parameters() if n in ewc.fisher)
    assert value(ewc, model) == pytest.approx(expected) and expected > 0
    with pytest.raises(ValueError, match="source_data"):
        EWC(model)


def test_ewc_with_zero_fisher_is_plain_fine_tuning():
    settings = dict(epochs=2, lr=1e-2, batch_size=16, seed=3, progress=False)
    plain, regular = mlp(dropout=0.2, bn=True), mlp(dropout=0.2, bn=True)
    ewc = EWC(regular, blobs(seed=5), lam=1e6, samples=16)
    ewc.fisher = {n: torch.zeros_like(f) for n, f in ewc.fisher.items()}
    fit(plain, blobs(), **settings)
    history = fit(regular, blobs(), regularizers=[ewc], **settings)
    for (name, a), b in zip(plain.state_dict().items(), regular.state_dict().values()):
        assert torch.equal(a, b), name  # bit-identical
    assert history.epochs[-1]["penalties"]["ewc"] == 0


def test_penalties_are_logged_apart_from_the_task_loss():
    plain, regular = mlp(), mlp()
    h0 = fit(plain, blobs(), epochs=2, progress=False)
    perturbed = L2SP(mlp(seed=9), alpha=1.0)  # snapshot of other weights: a penalty > 0 from the start
    h1 = fit(regular, blobs(), epochs=2, progress=False, regularizers=[perturbed, L1(1e-3)])
    assert h1.steps[0]["loss"] == h0.steps[0]["loss"]  # the first step's data loss, without the penalties
    assert set(h1.epochs[0]["penalties"]) == {"l2sp", "l1"}
    assert h1.steps[0]["penalty"] > 0 and "penalty" not in h0.steps[0]
    assert h1.epochs[0]["penalty"] == pytest.approx(sum(h1.epochs[0]["penalties"].values()))
    # L2-SP, L1 and EWC read parameters only: the feature cache still runs for a head-only fit.
    model = freeze(mlp())
    history = fit(model, blobs(), epochs=1, progress=False, regularizers=[L2SP(model), L1()])
    assert history.info["path"] == "feature-cache"


def test_rehearsal_is_the_source_loss_through_the_kept_head():
    source = blobs(32, seed=4)
    model = mlp()
    kept = copy.deepcopy(model[1])
    rehearse = Rehearsal(source, kept, weight=0.5, batch_size=32)
    model[1] = nn.Linear(16, 3)  # a new head for the new task
    x, y = source.tensors
    expected = 0.5 * F.cross_entropy(kept(model[0](x)), y)  # all 32 examples in one (shuffled) batch
    torch.testing.assert_close(rehearse.penalty(model), expected)
    history = fit(freeze(model), blobs(), epochs=1, progress=False, regularizers=[rehearse])
    assert history.info["path"] == "full" and "rehearsal" in history.epochs[0]["penalties"]


def test_set_dropout_changes_every_rate():
    model = mlp(dropout=0.1)
    assert set_dropout(model, 0.4) == 1 and model[0][3].p == 0.4
    from transformers import BertConfig, BertForSequenceClassification

    bert = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                    intermediate_size=64, vocab_size=100))
    dropouts = [m for m in bert.modules() if isinstance(m, nn.Dropout)]
    assert set_dropout(bert, 0.25) == len(dropouts) > 0 and {m.p for m in dropouts} == {0.25}
    with pytest.raises(ValueError, match="probability"):
        set_dropout(model, 1.5)


def test_dropout_before_the_head_keeps_its_name_and_weights():
    model = mlp()
    x = blobs().tensors[0]
    before = model(x)
    add_dropout_before_head(model, 0.5)
    assert isinstance(model[1], DropoutLinear) and head_name(model) == "1"
    model.eval()
    assert torch.equal(model(x), before)  # eval: no dropout, same weights
    model.train()
    assert not torch.equal(model(x), before)
    assert set_dropout(model, 0.3) == 2 and model[1].p == 0.3
    # A frozen backbone: the feature cache trains the head with its dropout on.
    heads = []
    for p in (0.0, 0.9):
        m = freeze(add_dropout_before_head(mlp(), p))
        assert fit(m, blobs(), epochs=2, progress=False).info["path"] == "feature-cache"
        heads.append(m[1].weight.detach().clone())
    assert not torch.equal(heads[0], heads[1])


def test_dropout_before_the_head_reuses_an_existing_dropout():
    from transformers import BertConfig, BertForSequenceClassification

    bert = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=64, vocab_size=100))
    add_dropout_before_head(bert, 0.35)
    assert bert.dropout.p == 0.35 and type(bert.classifier) is nn.Linear
    seq = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1), nn.Linear(4, 2))
    add_dropout_before_head(seq, 0.6)
    assert seq[1].p == 0.6 and type(seq[2]) is nn.Linear


def test_generalization_gap_scores_train_and_held_out_alike_without_augmentation():
    from ftkit.data.labeled import ImageDataset
    from ftkit.data.transforms import ImageTransform
    from ftkit.train.evaluate import evaluate

    model = mlp()
    fit(model, blobs(48), epochs=3, progress=False)
    train, held_out = blobs(48), blobs(96, seed=5)
    gap = generalization_gap(model, train, held_out)
    seen, unseen = evaluate(model, train), evaluate(model, held_out)
    assert gap["train_accuracy"] == seen["accuracy"] and gap["held_out_accuracy"] == unseen["accuracy"]
    assert gap["gap"] == pytest.approx(seen["accuracy"] - unseen["accuracy"])
    assert gap["loss_gap"] == pytest.approx(unseen["loss"] - seen["loss"])
    # An augmented image split is scored as it is, without the random transform; it stays augmented.
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(20, 8, 8, generator=g) * 255).to(torch.uint8)
    data = ImageDataset(images, [i % 2 for i in range(20)], ["a", "b"],
                        transform=ImageTransform(1, (8, 8), [0.5], [0.5], augment="strong"))
    clean = ImageDataset(images, data.targets, ["a", "b"], transform=ImageTransform(1, (8, 8), [0.5], [0.5]))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    torch.manual_seed(3)
    assert generalization_gap(net, data, clean) == pytest.approx(generalization_gap(net, clean, clean))
    assert generalization_gap(net, data, clean)["gap"] == 0 and data.augment == "strong"
