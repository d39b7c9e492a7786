"""Checkpoints: safetensors + JSON, atomic writes, careful loads, and bit-exact resume of fit."""
import json
import struct

import pytest
import torch
from helpers import assert_same, blobs, state
from torch import nn
from torch.utils.data import TensorDataset

from ftkit.core.device import use_all_cores
from ftkit.train.checkpoint import CheckpointError, checkpoint_info, load_checkpoint, load_weights, save_checkpoint
from ftkit.train.loop import fit
from ftkit.train.optim import make_optimizer, make_scheduler
from ftkit.tuning.freeze import bn_mode, freeze

use_all_cores(torch.device("cpu"))


def mlp(out=3):
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2)),
        nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.2)),
        nn.Linear(16, out),
    )


def trained():
    model = mlp()
    optimizer = make_optimizer(model, "adamw", lr=slice(1e-4, 1e-2))
    scheduler = make_scheduler(optimizer, "cosine", total_steps=10, warmup=2)
    x, y = blobs().tensors
    for _ in range(3):
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    return model, optimizer, scheduler


def test_round_trip_of_model_optimizer_scheduler_and_state(tmp_path):
    model, optimizer, scheduler = trained()
    freeze(model, bn="train")
    extra = {"epoch": 3, "note": "héllo", "pair": (1, 2.5), "nested": {"t": torch.arange(3), "xs": [None, True]}}
    path = save_checkpoint(model, tmp_path / "a.safetensors", optimizer, scheduler, **extra)

    fresh = mlp()
    opt2 = make_optimizer(fresh, "adamw", lr=slice(1e-4, 1e-2))
    sched2 = make_scheduler(opt2, "cosine", total_steps=10, warmup=2)
    got = load_checkpoint(path, fresh, opt2, sched2)
    assert_same(state(fresh), state(model))
    assert [p.requires_grad for p in fresh.parameters()] == [p.requires_grad for p in model.parameters()]
    assert bn_mode(fresh[0][1]) == "train"
    assert sched2.state_dict() == scheduler.state_dict()
    assert opt2.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    for p, q in zip(model.parameters(), fresh.parameters()):
        for key, value in optimizer.state[p].items():
            assert torch.equal(value, opt2.state[q][key])
    assert got["pair"] == (1, 2.5) and got["note"] == "héllo" and torch.equal(got["nested"]["t"], torch.arange(3))
    # The file is plain safetensors: an 8-byte header length, then a JSON header (no pickle anywhere).
    raw = path.read_bytes()
    header = json.loads(raw[8: 8 + struct.unpack("<Q", raw[:8])[0]])
    assert json.loads(header["__metadata__"]["ftkit"])["format"] == "ftkit.checkpoint"
    assert checkpoint_info(path)["state"]["epoch"] == 3


def test_tied_weights_are_saved_once(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    make = lambda: GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=8))
    torch.manual_seed(0)
    model = make()
    path = save_checkpoint(model, tmp_path / "gpt.safetensors")
    fresh = make()
    load_checkpoint(path, fresh)
    assert_same(state(fresh), state(model))
    assert list(checkpoint_info(path)["aliases"]) == ["model/lm_head.weight"]  # stored once


def test_bad_checkpoints_raise_clear_errors_and_leave_the_model_alone(tmp_path):
    model, optimizer, scheduler = trained()
    path = save_checkpoint(model, tmp_path / "good.safetensors", optimizer, scheduler)
    victim = mlp()
    torch.manual_seed(5)
    for p in victim.parameters():
        nn.init.normal_(p)
    before = state(victim)

    with pytest.raises(FileNotFoundError, match="No checkpoint file"):
        load_checkpoint(tmp_path / "missing.safetensors", victim)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(truncated, victim)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(garbage, victim)
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(save_checkpoint(mlp(out=5), tmp_path / "other.safetensors"), victim)
    # Weights would fit, but the optimizer's layout does not: nothing may change.
    with pytest.raises(CheckpointError, match="param groups"):
        load_checkpoint(path, victim, torch.optim.AdamW(victim.parameters()))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not an ftkit checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors", victim)
    assert_same(state(victim), before)
    with pytest.raises(TypeError, match="never pickle"):
        save_checkpoint(victim, tmp_path / "x.safetensors", thing=object())


def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import ftkit.train.checkpoint as checkpoint

    model, optimizer, _ = trained()
    path = save_checkpoint(model, tmp_path / "last.safetensors", epoch=1)
    good = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", crash)  # the writer the checkpoint module calls
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, path, epoch=2)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary file left behind


def _stop_after(n):
    def callback(epoch, history, model):
        if epoch + 1 == n:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("settings", [
    dict(schedule="cosine", lr=1e-2),
    dict(schedule="onecycle", lr=slice(1e-4, 1e-2), unfreeze_every=1, optimizer="adamw", clip=1.0),
    dict(schedule="step", lr=0.05, optimizer="sgd", unfreeze_every=2, accumulate=2),
])
def test_resume_is_bit_identical_to_an_unbroken_run(tmp_path, settings):
    common = dict(epochs=6, batch_size=16, seed=3, progress=False, **settings)
    straight = mlp()
    h_straight = fit(straight, blobs(), blobs(seed=1), **common)

    broken = mlp()
    h_first = fit(broken, blobs(), blobs(seed=1), checkpoint_dir=tmp_path, callbacks=[_stop_after(3)], **common)
    assert h_first.interrupted and len(h_first.epochs) == 3
    resumed = mlp()  # a fresh process would start from a fresh model
    h_resumed = fit(resumed, blobs(), blobs(seed=1), checkpoint_dir=tmp_path, **common)
    assert h_resumed.info["resumed_from"] == 3
    assert_same(state(resumed), state(straight))
    assert [p.requires_grad for p in resumed.parameters()] == [p.requires_grad for p in straight.parameters()]
    assert [s["loss"] for s in h_resumed.steps] == [s["loss"] for s in h_straight.steps]
    assert h_resumed.metric("val_loss") == h_straight.metric("val_loss")
    assert (tmp_path / "best.safetensors").is_file()


def test_resume_restores_best_with_early_stopping(tmp_path):
    common = dict(epochs=8, patience=2, seed=0, progress=False, lr=1e-2, schedule="constant")
    train = blobs(64)
    x, y = train.tensors
    val = TensorDataset(x, (y + 1) % 3)  # gets worse as the model learns: early stopping triggers
    straight = mlp()
    h_straight = fit(straight, train, val, **common)
    broken = mlp()
    fit(broken, train, val, checkpoint_dir=tmp_path, callbacks=[_stop_after(2)], **common)
    resumed = mlp()
    h_resumed = fit(resumed, train, val, checkpoint_dir=tmp_path, **common)
    assert h_resumed.stopped_early == h_straight.stopped_early
    assert h_resumed.best_epoch == h_straight.best_epoch
    assert_same(state(resumed), state(straight))
    assert_same(load_weights(tmp_path / "best.safetensors"), state(straight))
    # Running the same cell again finds a finished run: nothing more trains.
    again = fit(resumed, train, val, checkpoint_dir=tmp_path, **common)
    assert len(again.epochs) == len(h_straight.epochs) and again.stopped_early
    assert_same(state(resumed), state(straight))


def test_an_epoch_snapshot_reuses_the_previous_one_instead_of_holding_two_copies():
    from ftkit.train.checkpoint import restore_state, snapshot_state

    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    first = snapshot_state(model)
    kept = {name: t.data_ptr() for name, t in first.items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.add_(2.0)
    second = snapshot_state(model, into=first)
    assert {name: t.data_ptr() for name, t in second.items()} == kept  # the same storage, overwritten
    assert torch.equal(second["0.weight"], model[0].weight) and torch.equal(second["1.running_mean"],
                                                                            model[1].running_mean)
    model[0].weight.requires_grad_(False)  # a parameter frozen since: left out; one unfrozen: copied afresh
    third = snapshot_state(model, into=second)
    assert "0.weight" not in third and "0.bias" in third
    with torch.no_grad():
        model[0].bias.zero_()
    restore_state(model, third)
    assert torch.equal(model[0].bias, third["0.bias"]) and model[0].bias.abs().sum() > 0
