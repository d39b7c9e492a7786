"""fit against a hand-written loop, and each of its features on tiny models (seconds in all)."""
import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same, blobs, state
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ftkit.core.device import use_all_cores
from ftkit.core.history import History
from ftkit.train.config import TrainConfig
from ftkit.train.evaluate import evaluate, predict
from ftkit.train.loop import fit
from ftkit.train.lr_find import lr_find
from ftkit.train.optim import param_groups
from ftkit.tuning.freeze import freeze, freeze_to

use_all_cores(torch.device("cpu"))  # fit sets the thread count once; set it before any reference loop runs


def mlp(dropout=0.2, bn=True):
    torch.manual_seed(1)
    layers = [nn.Linear(6, 16), nn.BatchNorm1d(16) if bn else nn.Identity(), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(nn.Sequential(*layers), nn.Linear(16, 3))


class TinyText(Dataset):
    """Dict items of varying length, padded by the dataset's own collate_fn (the text data contract)."""

    task = "text-classification"
    classes = ["low", "high"]

    def __init__(self, n=24, seed=0, causal=False):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 100, (n, 10), generator=g)
        self.lengths = torch.randint(4, 11, (n,), generator=g)
        self.causal = causal
        if causal:
            self.task = "causal-lm"

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i, : self.lengths[i]]
        label = ids.clone() if self.causal else int(ids[0] > 50)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": label}

    def collate_fn(self, items):
        width = max(len(it["input_ids"]) for it in items)
        pad = lambda t, v: F.pad(t, (0, width - len(t)), value=v)
        batch = {k: torch.stack([pad(it[k], 0) for it in items]) for k in ("input_ids", "attention_mask")}
        if self.causal:
            batch["labels"] = torch.stack([pad(it["labels"], -100) for it in items])
        else:
            batch["labels"] = torch.tensor([it["labels"] for it in items])
        return batch


def tiny_bert(dropout=0.1):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(2)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     vocab_size=100, max_position_embeddings=32, num_labels=2, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(cfg)


def reference_loop(model, data, *, epochs, lr, batch_size, seed, warmup, weight_decay, clip, collate_fn=None):
    """Plain PyTorch: what fit promises to do with schedule="cosine", AdamW and clipping."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=g, collate_fn=collate_fn)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)  # fit's AdamW: torch's fused kernel
    total = epochs * len(loader)

    def factor(s):  # linear warmup (s+1)/(w+1), then half a cosine to 0
        if s < warmup:
            return (s + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    for _ in range(epochs):
        for batch in loader:
            if isinstance(batch, dict):
                labels = batch["labels"]
                logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            else:
                (x, labels) = batch
                logits = model(x)
            loss = F.cross_entropy(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
    return model


def test_fit_equals_hand_written_loop():
    data = blobs()
    settings = dict(epochs=3, lr=3e-3, batch_size=16, seed=7, warmup=2, weight_decay=0.05, clip=0.5)
    expected = reference_loop(mlp(), data, **settings)
    model = mlp()
    history = fit(model, data, blobs(seed=1), schedule="cosine", progress=False, **settings)
    assert_same(state(model), state(expected))  # bit-identical, BatchNorm statistics included
    assert history.info["path"] == "full" and history.info["device"] == "cpu"
    assert len(history.steps) == 3 * 6 and len(history.epochs) == 3


def test_fit_equals_hand_written_loop_for_hugging_face_dict_batches():
    data = TinyText()
    settings = dict(epochs=2, lr=1e-3, batch_size=8, seed=3, warmup=1, weight_decay=0.01, clip=1.0)
    expected = reference_loop(tiny_bert(), data, collate_fn=data.collate_fn, **settings)
    model = tiny_bert()
    history = fit(model, data, TinyText(seed=1), schedule="cosine", progress=False, **settings)
    assert_same(state(model), state(expected))
    assert {"val_loss", "val_accuracy", "val_f1"} <= set(history.epochs[-1])


def test_same_seed_same_run_and_history_is_plain_data():
    runs = []
    for _ in range(2):
        model = mlp()
        history = fit(model, blobs(), blobs(seed=1), epochs=2, seed=5, progress=False)
        runs.append((state(model), history))
    assert_same(runs[0][0], runs[1][0])
    history = runs[0][1]
    text = json.dumps(history.to_dict())  # no tensors anywhere
    again = History.from_dict(json.loads(text))
    assert again.epochs == history.epochs and again.best_epoch == history.best_epoch
    assert len(history.to_table()) == 2 and "val_loss" in str(history)
    assert history.metric("val_accuracy")[0] is not None


def test_unknown_setting_names_the_valid_fields():
    with pytest.raises(TypeError, match="learning_rate.*TrainConfig's fields are:.*lr"):
        fit(mlp(), blobs(), learning_rate=1e-3)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="adagrad")
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(warmup=1.5)
    with pytest.raises(ValueError, match="nothing to train"):
        fit(freeze_to(mlp(), 2), blobs(), progress=False)


def test_accumulation_equals_a_bigger_batch():
    # Without BatchNorm, 4 micro-batches of 8 give the gradient of one batch of 32.
    a, b = mlp(dropout=0.0, bn=False), mlp(dropout=0.0, bn=False)
    common = dict(epochs=2, lr=0.1, optimizer="sgd", schedule="constant", progress=False, weight_decay=0.0)
    fit(a, blobs(64), batch_size=8, accumulate=4, **common)
    fit(b, blobs(64), batch_size=32, **common)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)


def test_clipping_bounds_the_update():
    moves = {}
    for clip in (None, 0.01):
        model = mlp(dropout=0.0, bn=False)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        # One SGD step with lr=1 and no momentum: the update is exactly the (clipped) gradient.
        fit(model, blobs(16), epochs=1, batch_size=16, lr=1.0, optimizer="sgd", momentum=0.0, weight_decay=0.0,
            schedule="constant", clip=clip, progress=False)
        moves[clip] = float((torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm())
    assert moves[0.01] <= 0.01 * (1 + 1e-4)
    assert moves[None] > 0.05


def test_validating_every_k_epochs_trains_the_same_weights():
    runs = {}
    for every in (1, 2):
        model = mlp()
        runs[every] = (fit(model, blobs(), blobs(seed=1), epochs=5, val_every=every, progress=False), state(model))
    assert_same(runs[1][1], runs[2][1])
    history = runs[2][0]
    assert [e["epoch"] for e in history.epochs if "val_loss" in e] == [2, 4, 5]  # every 2nd, and the last
    assert history.epochs[-1]["val_accuracy"] == runs[1][0].epochs[-1]["val_accuracy"]
    assert history.best_epoch in (2, 4, 5)
    with pytest.raises(ValueError, match="val_every=1 with patience"):
        TrainConfig(val_every=2, patience=2)
    with pytest.raises(ValueError, match="val_every is a number"):
        TrainConfig(val_every=0)


def test_early_stopping_restores_the_best_epoch():
    train = blobs(64)
    x, y = train.tensors
    val = TensorDataset(x, (y + 1) % 3)  # learning the training labels makes this validation loss worse
    model = mlp(dropout=0.0)
    history = fit(model, train, val, epochs=12, patience=1, schedule="constant", lr=1e-2, progress=False)
    assert history.stopped_early and len(history.epochs) < 12
    best = history.best_epoch
    losses = history.metric("val_loss")
    assert losses[best - 1] == min(losses)
    # The same run stopped by hand at the best epoch (constant LR: the first `best` epochs are identical).
    reference = mlp(dropout=0.0)
    fit(reference, train, val, epochs=best, schedule="constant", lr=1e-2, progress=False)
    assert_same(state(model), state(reference))


def test_gradual_unfreezing_follows_the_epochs():
    seen = []
    model = mlp()
    fit(model, blobs(), epochs=3, unfreeze_every=1, lr=slice(1e-4, 1e-2), progress=False,
        callbacks=[lambda epoch, history, m: seen.append([p.requires_grad for p in m.parameters()])])
    # Layer groups by children: [backbone (Linear + BatchNorm), head]. Epoch 1: head only; then everything.
    assert seen[0] == [False] * 4 + [True] * 2
    assert seen[1] == seen[2] == [True] * 6


def test_frozen_backbone_runs_in_eval_mode_and_batchnorm_statistics_stay():
    model = mlp()
    freeze(model)
    before = state(model)
    fit(model, blobs(), epochs=2, feature_cache=False, progress=False)
    after = state(model)
    for k in before:
        if not k.startswith("1."):
            assert torch.equal(before[k], after[k]), k  # weights and running statistics untouched
    assert not torch.equal(before["1.weight"], after["1.weight"])


def test_feature_cache_equals_the_full_path():
    models, histories = [], []
    for cache in (True, False):
        model = mlp(dropout=0.5)  # the dropout is inside the frozen backbone: off on both paths
        freeze(model)
        histories.append(fit(model, blobs(), blobs(seed=1), epochs=3, feature_cache=cache, progress=False))
        models.append(model)
    assert histories[0].info["path"] == "feature-cache"
    assert histories[1].info["path"] == "full" and "feature_cache=False" in histories[1].info["path_reason"]
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    for ra, rb in zip(histories[0].epochs, histories[1].epochs):
        assert ra["val_loss"] == pytest.approx(rb["val_loss"], rel=1e-5)


def test_feature_cache_for_a_hugging_face_model():
    models = []
    for cache in (True, False):
        model = tiny_bert(dropout=0.0)
        freeze(model)
        history = fit(model, TinyText(), TinyText(seed=1), epochs=2, feature_cache=cache, progress=False)
        assert history.info["path"] == ("feature-cache" if cache else "full")
        models.append(model)
    torch.testing.assert_close(models[0].classifier.weight, models[1].classifier.weight, atol=1e-6, rtol=1e-5)


class Augmented(TensorDataset):
    augment = "flip"


class Plain(TensorDataset):
    augment = "none"


class WithTransform(TensorDataset):
    transform = staticmethod(lambda x: x)


@pytest.mark.parametrize("make_data, frozen, settings, expected", [
    (Plain, True, {}, "feature-cache"),
    (Augmented, True, {}, "full"),  # augmentation: features differ every epoch
    (WithTransform, True, {}, "full"),  # an unknown transform may be random
    (TensorDataset, False, {}, "full"),  # a backbone parameter trains
    (TensorDataset, True, {"unfreeze_every": 1}, "full"),  # the backbone trains later
    (TensorDataset, True, {"regularizers": [lambda m: m[1].weight.pow(2).sum()]}, "full"),
    (TensorDataset, True, {"feature_cache": False}, "full"),
])
def test_feature_cache_is_chosen_only_when_valid(make_data, frozen, settings, expected):
    model = mlp()
    if frozen:
        freeze(model)
    else:
        freeze(model, r"^0\.1\.")  # only the BatchNorm is frozen; the first Linear trains
    history = fit(model, make_data(*blobs().tensors), epochs=1, progress=False, **settings)
    assert history.info["path"] == expected, history.info["path_reason"]


def test_regularizer_penalty_is_added_and_logged_separately():
    def l2_head(model):
        return 0.1 * model[1].weight.pow(2).sum()

    plain, regular = mlp(), mlp()
    h0 = fit(plain, blobs(), epochs=2, progress=False)
    h1 = fit(regular, blobs(), epochs=2, progress=False, regularizers=[l2_head])
    assert "penalty" in h1.steps[0] and "penalty" not in h0.steps[0]
    assert h1.epochs[0]["penalties"]["l2_head"] > 0
    assert h1.steps[0]["loss"] == h0.steps[0]["loss"]  # the data loss is logged without the penalty
    assert regular[1].weight.norm() < plain[1].weight.norm()


def test_interrupt_from_a_callback_keeps_the_completed_epoch(tmp_path):
    from ftkit.train.checkpoint import load_weights

    def stop(epoch, history, model):
        if epoch == 1:
            raise KeyboardInterrupt

    model = mlp()
    history = fit(model, blobs(), blobs(seed=1), epochs=5, checkpoint_dir=tmp_path, callbacks=[stop],
                  progress=False)
    assert history.interrupted and len(history.epochs) == 2
    assert_same(state(model), load_weights(tmp_path / "last.safetensors"))


def test_interrupt_mid_epoch_rolls_back_to_the_last_completed_epoch(tmp_path):
    from ftkit.train.checkpoint import load_weights

    calls = []

    def bomb(model):  # a regularizer that presses Ctrl-C in the middle of epoch 2
        calls.append(1)
        if len(calls) == 6 + 3:
            raise KeyboardInterrupt
        return torch.zeros(())

    bomb.needs_backbone = False
    model = mlp()
    history = fit(model, blobs(), epochs=3, batch_size=16, regularizers=[bomb], checkpoint_dir=tmp_path,
                  progress=False)
    assert history.interrupted and len(history.epochs) == 1 and len(history.steps) == 8
    assert_same(state(model), load_weights(tmp_path / "last.safetensors"))


def test_regression_and_causal_lm_losses():
    x = torch.randn(40, 6)
    data = TensorDataset(x, x[:, 0] * 2.0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
    history = fit(model, data, data, epochs=3, task="regression", lr=1e-2, progress=False)
    assert {"val_mse", "val_mae"} <= set(history.epochs[-1])
    assert history.epochs[-1]["val_loss"] == pytest.approx(history.epochs[-1]["val_mse"], rel=1e-5)
    assert evaluate(model, data, task="regression")["mae"] >= 0
    assert predict(model, data, task="regression").outputs.shape == (40,)

    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=16))
    text = TinyText(causal=True)
    batch = text.collate_fn([text[i] for i in range(4)])
    from ftkit.core.batches import compute_loss

    lm.eval()
    ours = compute_loss("causal-lm", lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                        batch["labels"])
    torch.testing.assert_close(ours, lm(**batch).loss)  # our visible shifted loss = Hugging Face's
    history = fit(lm, text, text, epochs=2, lr=1e-3, progress=False)
    assert history.epochs[-1]["val_perplexity"] == pytest.approx(math.exp(history.epochs[-1]["val_loss"]))
    assert history.info["task"] == "causal-lm"


def test_evaluate_and_predict_report_per_class():
    model = mlp()
    data = blobs()
    data.classes = ["zero", "one", "two"]
    fit(model, data, epochs=2, progress=False)
    report = evaluate(model, data)
    assert {"accuracy", "precision", "recall", "f1", "per_class", "confusion", "loss"} <= set(report)
    assert [row["class"] for row in report["per_class"]] == data.classes
    assert sum(map(sum, report["confusion"])) == len(data)
    pred = predict(model, data)
    assert pred.probs.shape == (len(data), 3) and torch.allclose(pred.probs.sum(1), torch.ones(len(data)))
    assert set(pred.names) <= set(data.classes)
    assert report["accuracy"] == pytest.approx(float((pred.labels == data.tensors[1]).float().mean()))


def test_lr_find_restores_the_model_exactly():
    model = mlp()
    freeze(model, bn="train")
    model[1].bias.requires_grad_(False)
    model.eval()
    model[0].train()
    before = state(model)
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    found = lr_find(model, blobs(), num_steps=30, progress=False)
    assert len(found.lrs) > 5 and found.lrs == sorted(found.lrs) and 1e-7 <= found.suggestion <= 10
    assert_same(state(model), before)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())


def test_lr_find_suggests_a_rate_on_the_way_down_to_the_minimum():
    from ftkit.train.lr_find import suggest_lr

    lrs = [10.0 ** e for e in range(-6, 3)]
    losses = [2.3, 2.2, 1.6, 1.2, 1.0, 4.0, 3.5, 1.05, 9.0]  # minimum at 1e-2; a steeper drop after it
    suggestion, lr_min = suggest_lr(lrs, losses)
    assert suggestion == 1e-4  # the steepest fall before the minimum (2.2 -> 1.6 -> 1.2)
    assert lr_min == 1e-3
    found = lr_find(mlp(), blobs(n=256), num_steps=60, start_lr=1e-5, end_lr=100.0, progress=False)
    lowest = min(range(len(found.losses)), key=found.losses.__getitem__)
    assert found.suggestion <= found.lrs[lowest] and found.lr_min == found.lrs[lowest] / 10


def test_param_groups_used_by_fit_cover_trainable_parameters_once():
    model = tiny_bert()
    freeze(model)
    groups = param_groups(model, lr=slice(1e-5, 1e-3), weight_decay=0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert groups[-1]["group"] == "head" and groups[-1]["lr"] == 1e-3


def test_optimizer_state_survives_gradual_unfreezing(tmp_path):
    from ftkit.train.checkpoint import load_checkpoint
    from ftkit.train.optim import make_optimizer

    model = mlp()
    fit(model, blobs(), epochs=3, batch_size=32, unfreeze_every=2, checkpoint_dir=tmp_path, progress=False)
    optimizer = make_optimizer(model, "adamw", 1e-3)
    load_checkpoint(tmp_path / "last.safetensors", model, optimizer)
    steps = {n: int(optimizer.state[p]["step"]) for n, p in model.named_parameters()}
    # 3 steps per epoch: the head trained all 3 epochs without its Adam state being reset,
    # the backbone joined at epoch 3 with fresh state.
    assert steps == {"0.0.weight": 3, "0.0.bias": 3, "0.1.weight": 3, "0.1.bias": 3, "1.weight": 9, "1.bias": 9}


def test_mixed_precision_loop_runs_with_autocast_and_a_grad_scaler(monkeypatch, tmp_path):
    # The CUDA path's loop code (autocast + GradScaler: scale, unscale_, clip, step, update), run on the
    # CPU with bfloat16 autocast so that it is tested on machines without a GPU.
    import ftkit.train.loop as train

    monkeypatch.setattr(train, "amp_dtype", lambda device, amp=True: torch.bfloat16)
    monkeypatch.setattr(train, "grad_scaler", lambda device, dtype: torch.amp.GradScaler("cpu", init_scale=256.0))
    model = mlp()
    history = fit(model, blobs(), blobs(seed=1), epochs=2, clip=1.0, checkpoint_dir=tmp_path, progress=False)
    assert history.info["amp"] == "bfloat16"
    assert all(math.isfinite(s["loss"]) for s in history.steps)
    from ftkit.train.checkpoint import checkpoint_info

    assert checkpoint_info(tmp_path / "last.safetensors")["scaler"]["scale"] == 256.0


def test_progress_bars_and_summary_lines(monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    fit(mlp(), blobs(), blobs(seed=1), epochs=1, progress=True)
    out = capsys.readouterr()
    assert "epoch 1:" in out.out + out.err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    fit(mlp(), blobs(), blobs(seed=1), epochs=1, progress=True)
    out = capsys.readouterr()
    assert out.out + out.err == ""


def test_gradual_unfreezing_keeps_the_users_own_freezing_and_batchnorm_modes():
    from ftkit.tuning.freeze import bn_mode

    model = nn.Sequential(nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16)),
                          nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU()), nn.Linear(16, 3))
    freeze_to(model, 1, bn="train")  # the first block frozen by the user, its statistics adapting
    seen = []
    fit(model, blobs(), epochs=3, unfreeze_every=1, progress=False,
        callbacks=[lambda epoch, history, m: seen.append(([p.requires_grad for p in m.parameters()],
                                                          bn_mode(m[0][1])))])
    # groups: block 0 (user-frozen), block 1, head. Epoch 1: head; 2: + block 1; 3: block 0 stays frozen.
    assert [flags for flags, _ in seen] == [[False] * 4 + [False] * 4 + [True] * 2,
                                            [False] * 4 + [True] * 6, [False] * 4 + [True] * 6]
    assert {mode for _, mode in seen} == {"train"}
    assert [p.requires_grad for p in model.parameters()] == [False] * 4 + [True] * 6  # as before fit


def test_gradual_unfreezing_never_trains_lora_base_weights():
    from ftkit.tuning.lora import add_lora

    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
                          nn.Linear(16, 3))
    add_lora(model, r=2, targets=r"^[01]\.0$")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora" not in n and not n.startswith("2.")}
    fit(model, blobs(), epochs=3, unfreeze_every=1, progress=False)
    for name, p in model.named_parameters():
        if name in before:
            assert torch.equal(p, before[name]) and not p.requires_grad, name  # base weights never moved


def test_a_failing_gradual_unfreezing_run_leaves_the_users_freezing_as_it_was():
    model = mlp()  # everything trains; gradual unfreezing starts by freezing all but the head
    before = [p.requires_grad for p in model.parameters()]
    empty = TensorDataset(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):  # found after gradual unfreezing froze all but the head
        fit(model, empty, epochs=2, unfreeze_every=1, progress=False)
    assert [p.requires_grad for p in model.parameters()] == before


def test_a_model_compiled_in_place_trains_to_the_same_weights():
    # torch.compile's way for a module: model.compile() keeps its class and parameter names, so fit,
    # checkpoints and layer groups see the same model. The "eager" backend keeps the test to a second.
    plain, compiled = mlp(), mlp()
    compiled.compile(backend="eager")
    settings = dict(epochs=2, lr=3e-3, batch_size=16, seed=7, progress=False)
    fit(plain, blobs(), blobs(seed=1), **settings)
    history = fit(compiled, blobs(), blobs(seed=1), **settings)
    assert compiled._compiled_call_impl is not None  # still compiled: fit did not undo it
    assert_same(state(compiled), state(plain))
    assert history.info["path"] == "full"
