"""Forgetting, weight drift and representation similarity; and a real forgetting experiment (seconds)."""
import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ftkit.data.catalogue import load_dataset
from ftkit.experiments.analysis import ForgettingMeter, forgetting, linear_cka, representation_similarity, weight_drift
from ftkit.models.cards import ModelCard
from ftkit.train.evaluate import evaluate
from ftkit.train.loop import fit
from ftkit.tuning.freeze import freeze
from ftkit.tuning.lora import add_lora, lora_modules
from ftkit.tuning.regularize import EWC, L2SP, diagonal_fisher

CARD = ModelCard(name="tiny-cnn", source="user", task="image-classification", arch="", input_size=(1, 16, 16),
                 mean=(0.5,), std=(0.5,))

pytestmark = pytest.mark.usefixtures("one_thread")


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))


def as_tensors(split, limit=None):
    """The prepared images once, as a TensorDataset (the transform runs once, not every epoch)."""
    n = len(split) if limit is None else min(limit, len(split))
    return TensorDataset(torch.stack([split[i][0] for i in range(n)]), torch.tensor(split.targets[:n]))



@pytest.fixture(scope="module")
def tasks():
    """A source task (10 rendered letters) and a new task (sklearn's handwritten digits), 16x16 grey."""
    glyphs = load_dataset("glyphs", CARD, chars="ABCDEFGHIJ", per_class=80, seed=0)
    digits = load_dataset("digits", CARD, seed=0)
    return as_tensors(glyphs.train), as_tensors(glyphs.test), as_tensors(digits.train, 600)


@pytest.fixture(scope="module")
def source_model(tasks):
    source_train, _, _ = tasks
    model = cnn()
    fit(model, source_train, epochs=6, lr=5e-3, batch_size=16, progress=False)
    return model


def new_head(model, seed):
    torch.manual_seed(100 + seed)
    model[11] = nn.Linear(64, 10)
    return model


def test_fine_tuning_forgets_the_source_task_and_l2sp_and_ewc_forget_less(tasks, source_model):
    source_train, source_test, target_train = tasks
    before = evaluate(source_model, source_test)["accuracy"]
    assert before > 0.85, "the source model should have learned the letters"
    shared = [n for n, _ in source_model.named_parameters() if not n.startswith("11.")]
    fisher = diagonal_fisher(source_model, source_train, samples=200, names=shared)  # once, for every seed
    meter = ForgettingMeter(source_model, source_test)
    after = {"plain": [], "l2sp": [], "ewc": []}
    for seed in range(3):
        for method in after:
            model = copy.deepcopy(source_model)
            regularizers = {"plain": [], "l2sp": [L2SP(model, alpha=1.0)],
                            "ewc": [EWC(model, lam=1e4, fisher=fisher)]}[method]
            new_head(model, seed)
            head = model[11]
            callbacks = [meter] if (method, seed) == ("plain", 0) else []
            history = fit(model, target_train, epochs=2, lr=1e-2, batch_size=32, seed=seed, weight_decay=0.0,
                          regularizers=regularizers, callbacks=callbacks, progress=False)
            result = forgetting(source_model, model, source_test)
            assert model[11] is head  # the source head was put on only for the measurement
            assert result["before"] == before and result["drop"] == pytest.approx(before - result["after"])
            after[method].append(result["after"])
            if callbacks:  # the forgetting meter wrote the source accuracy into every epoch
                assert history.metric("source_accuracy") == meter.values and len(meter.values) == 2
                assert meter.values[-1] == result["after"] and history.info["source_accuracy_before"] == before
    mean = {k: sum(v) / len(v) for k, v in after.items()}
    # Measured: before 0.98; after (mean of 3 seeds) plain 0.43, L2-SP 0.94, EWC 0.82.
    print(f"source accuracy before {before:.3f}; after, mean of 3 seeds: {mean}")
    assert mean["plain"] < before - 0.2, mean  # real forgetting without mitigation
    assert mean["l2sp"] > mean["plain"] + 0.15, mean
    assert mean["ewc"] > mean["plain"] + 0.15, mean


def test_forgetting_compares_with_the_source_head_or_the_own_one(tasks, source_model):
    _, source_test, _ = tasks
    same = forgetting(source_model, copy.deepcopy(source_model), source_test)
    assert same["metric"] == "accuracy" and same["drop"] == 0
    other = new_head(copy.deepcopy(source_model), 0)  # an untrained head on the letters: about chance
    assert forgetting(source_model, other, source_test, head="own")["after"] < 0.5
    assert forgetting(source_model, other, source_test)["drop"] == 0  # the backbone did not change
    with pytest.raises(ValueError, match="head must be one of"):
        ForgettingMeter(source_model, source_test, head="new")


def test_forgetting_of_a_language_model_is_a_rise_in_perplexity():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=16,
                                    bos_token_id=0, eos_token_id=0))
    lm.ftkit_card = ModelCard(name="tiny-gpt", source="user", task="causal-lm", arch="")
    g = torch.Generator().manual_seed(0)
    source_ids = torch.arange(12).repeat(24, 1) % 25  # counting: a pattern to learn
    target_ids = torch.randint(25, 50, (24, 12), generator=g)  # other tokens

    class Text(torch.utils.data.Dataset):
        task = "causal-lm"

        def __init__(self, ids):
            self.ids = ids

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.ids[i]}

    fit(lm, Text(source_ids), epochs=3, lr=3e-3, batch_size=8, progress=False)
    source = copy.deepcopy(lm)
    fit(lm, Text(target_ids), epochs=3, lr=3e-3, batch_size=8, progress=False)
    result = forgetting(source, lm, Text(source_ids))
    assert result["metric"] == "perplexity" and result["rise"] > 0
    assert result["rise"] == pytest.approx(result["after"] - result["before"])


def test_weight_drift_is_zero_for_the_same_model_and_for_a_frozen_backbone():
    model = cnn()
    table = weight_drift(model, copy.deepcopy(model))
    assert [r["group"] for r in table] == ["0", "1", "4", "5", "9", "11"] and all(r["drift"] == 0 for r in table)
    tuned = freeze(copy.deepcopy(model))  # head only
    data = TensorDataset(torch.randn(64, 1, 16, 16), torch.randint(0, 10, (64,)))
    fit(tuned, data, epochs=1, lr=1e-2, progress=False)
    rows = {r["group"]: r for r in weight_drift(model, tuned)}
    assert all(rows[g]["drift"] == 0 for g in ("0", "1", "4", "5", "9")) and rows["11"]["drift"] > 0
    w, w0 = tuned[11].weight.detach().double(), model[11].weight.detach().double()
    b, b0 = tuned[11].bias.detach().double(), model[11].bias.detach().double()
    change, size = (w - w0).pow(2).sum() + (b - b0).pow(2).sum(), w0.pow(2).sum() + b0.pow(2).sum()
    expected = math.sqrt(float(change) / float(size))
    assert rows["11"]["drift"] == pytest.approx(expected)


def test_weight_drift_counts_lora_as_the_weight_change_it_makes():
    model = cnn()
    tuned = add_lora(copy.deepcopy(model), r=2, targets=r"^9$")
    with torch.no_grad():
        lora = lora_modules(tuned)["9"]
        lora.lora_B.weight.fill_(0.01)
    rows = {r["group"]: r for r in weight_drift(model, tuned)}
    delta = lora.delta_weight().detach().double()
    assert rows["9"]["abs_change"] == pytest.approx(float(delta.norm()))
    assert rows["0"]["drift"] == 0 and rows["9"]["new params"] == 0


def test_linear_cka_is_one_for_the_same_features_up_to_rotation_and_scale():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=g)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    y = torch.randn(50, 6, generator=g)
    xc, yc = x.double() - x.double().mean(0), y.double() - y.double().mean(0)  # the feature-space formula
    expected = float((yc.T @ xc).norm() ** 2 / ((xc.T @ xc).norm() * (yc.T @ yc).norm()))
    assert linear_cka(x, y) == pytest.approx(expected) and linear_cka(x, y) < 0.5


def test_representation_similarity_is_one_for_the_same_model_and_drops_where_training_moved():
    model = cnn()
    data = TensorDataset(torch.randn(40, 1, 16, 16), torch.randint(0, 10, (40,)))
    table = representation_similarity(model, copy.deepcopy(model), data, max_examples=32, batch_size=16)
    assert [r["group"] for r in table] == ["0", "1", "4", "5", "9", "11"]
    assert all(r["cka"] == pytest.approx(1.0, abs=1e-6) for r in table)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other[9].weight.normal_()  # a different layer 9: its output and everything after it change
    rows = {r["group"]: r["cka"] for r in representation_similarity(model, other, data, max_examples=32)}
    assert rows["0"] == pytest.approx(1.0, abs=1e-6) and rows["9"] < 0.99


def test_representation_similarity_of_transformer_blocks():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                    intermediate_size=64, vocab_size=100, num_labels=2))

    class Ids(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            ids = torch.arange(1, 9) * (i + 1) % 100
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": i % 2}

    table = representation_similarity(bert, copy.deepcopy(bert), Ids())
    assert [r["layer"] for r in table] == ["bert.embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1",
                                           "bert.pooler.dense", "classifier"]
    assert all(r["cka"] == pytest.approx(1.0, abs=1e-6) for r in table)
