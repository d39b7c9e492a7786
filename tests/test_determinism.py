"""A seeded run gives the same numbers however it is watched, cached or interrupted.

Each test trains the same small network twice with the same seed, once plainly and once with
something that must not matter (progress bars, the live view, callbacks that only read, features
computed or reused, a stop and a resume), and compares every weight, every buffer and the History.
"""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import ftkit as ft
from ftkit.train import feature_cache

from helpers import assert_same, blobs, state

# What a History may differ in between two identical runs: how long they took and what they used.
TIMING = {"time_s", "samples_per_s", "peak_memory_mb"}


def net():
    """Two blocks with BatchNorm and dropout and a head; the first block frozen, as after ft.freeze_to(net, 1)."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3)),
        nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3)),
        nn.Linear(16, 3))
    return ft.freeze_to(model, 1)


def run(**kwargs):
    model = kwargs.pop("model", None) or net()
    settings = dict(epochs=2, batch_size=16, lr=1e-2, seed=3, progress=False, live=False)
    settings.update(kwargs)
    history = ft.fit(model, blobs(), blobs(seed=1), **settings)
    return model, history


def same_history(a, b):
    assert a.steps == b.steps
    strip = lambda epochs: [{k: v for k, v in e.items() if k not in TIMING} for e in epochs]
    assert strip(a.epochs) == strip(b.epochs)


def assert_same_run(first, second):
    assert_same(state(first[0]), state(second[0]))
    same_history(first[1], second[1])


def test_progress_bars_do_not_change_the_run(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the tests turn bars off; here they are on
    plain = run()
    watched = run(progress=True)
    assert_same_run(plain, watched)


def test_the_live_view_does_not_change_the_run():
    view = ft.LiveView(display=False, every=0)  # draws at every step, shown nowhere
    assert_same_run(run(), run(callbacks=[view]))
    assert view.renders > 0


class Reader:
    """A callback that only reads: it scores the model after every step and every epoch."""

    def __init__(self):
        self.scores = []

    def on_step(self, history, model):
        self.scores.append(ft.evaluate(model, blobs(32, seed=2))["accuracy"])

    def on_epoch_end(self, epoch, history, model):
        self.scores.append(float(ft.predict(model, blobs(32, seed=2)).probs.sum()))


def test_callbacks_that_only_read_do_not_change_the_run():
    # evaluate/predict between steps must leave the frozen block's dropout and BatchNorm as fit set them
    reader = Reader()
    assert_same_run(run(), run(callbacks=[reader]))
    assert len(reader.scores) == 2 * 6 + 2


def test_features_computed_or_reused_give_the_same_run():
    def head_only():
        torch.manual_seed(1)
        return ft.freeze(nn.Sequential(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), nn.Linear(16, 3)))

    class Data(TensorDataset):  # a fingerprint lets the cache keep features across calls
        def fingerprint(self):
            return str(hash(tuple(self.tensors[0].flatten().tolist())))

    train, val = Data(*blobs().tensors), Data(*blobs(seed=1).tensors)
    feature_cache.clear_feature_cache()
    runs = []
    for _ in range(2):
        model = head_only()
        history = ft.fit(model, train, val, epochs=3, batch_size=16, lr=1e-2, seed=3, progress=False, live=False)
        runs.append((model, history))
    assert [r[1].info["features"]["train"] for r in runs] == ["computed", "reused"]
    assert_same_run(*runs)


def test_a_run_stopped_mid_epoch_and_resumed_equals_an_unbroken_one(tmp_path):
    unbroken = run(epochs=3)

    class StopAt:
        def __init__(self, step):
            self.step = step

        def on_step(self, history, model):
            if len(history.steps) == self.step:
                raise KeyboardInterrupt

    model = net()
    first = ft.fit(model, blobs(), blobs(seed=1), epochs=3, batch_size=16, lr=1e-2, seed=3, progress=False,
                   live=False, checkpoint_dir=tmp_path, callbacks=[StopAt(9)])  # in the second epoch
    assert first.interrupted and len(first.epochs) == 1
    resumed = run(model=net(), epochs=3, checkpoint_dir=tmp_path)
    assert resumed[1].info["resumed_from"] == 1
    assert_same_run(unbroken, resumed)


def test_gradients_left_on_the_model_do_not_join_the_first_step():
    clean = run()
    model = net()
    x, y = blobs(8).tensors
    nn.functional.cross_entropy(model.eval()(x), y).backward()  # a stray backward (eval: no statistics move)
    assert any(p.grad is not None for p in model.parameters())
    assert_same_run(clean, run(model=model))


def _passes():
    """Every function that runs a model in eval mode and must leave each module's mode as it was."""
    data = blobs(32, seed=2)
    return {
        "evaluate": lambda m: ft.evaluate(m, data),
        "predict": lambda m: ft.predict(m, data),
        "features": lambda m: ft.features(m, data),
        "diagonal_fisher": lambda m: ft.diagonal_fisher(m, data, samples=8),
        "cache_features": lambda m: feature_cache.cache_features(m, "2", data, 16, torch.device("cpu")),
        "representation_similarity": lambda m: ft.representation_similarity(m, net(), data),
        "lr_find": lambda m: ft.lr_find(m, data, num_steps=5, progress=False),
    }


def test_every_pass_in_eval_mode_puts_each_module_back_as_it_was():
    for name, call in _passes().items():
        model = net()
        model.train()
        model[0].eval()  # as fit leaves a frozen block while it trains; a user may switch a dropout off too
        model[1][3].eval()
        before = [m.training for m in model.modules()]
        call(model)
        assert [m.training for m in model.modules()] == before, name


def test_interrupted_at_random_moments_a_run_loses_nothing_and_resumes_exactly(tmp_path):
    # Ctrl-C from another thread at a random moment (set-up, a step, validation, a checkpoint being
    # written, the end): the model is at a completed epoch, every checkpoint file is whole, and
    # resuming from the folder ends exactly where an unbroken run ends.
    import _thread
    import random
    import threading

    import time

    epochs = []
    run(epochs=1, checkpoint_dir=tmp_path / "warm-up")  # first calls are slower: time a warm run
    began = time.perf_counter()
    unbroken = run(epochs=3, checkpoint_dir=tmp_path / "unbroken",
                   callbacks=[lambda epoch, history, model: epochs.append(state(model))])[0]
    duration = time.perf_counter() - began  # interrupts land anywhere from before the start to just after the end
    start = state(net())
    rng = random.Random(0)
    outcomes = set()
    for trial in range(20):
        folder = tmp_path / f"trial{trial}"
        model = net()
        timer = threading.Timer(rng.uniform(0.0, 1.2 * duration), _thread.interrupt_main)
        try:
            timer.start()
            history = ft.fit(model, blobs(), blobs(seed=1), epochs=3, batch_size=16, lr=1e-2, seed=3,
                             progress=False, live=False, checkpoint_dir=folder)
            timer.join()
            outcomes.add("interrupted" if history.interrupted else "finished")
        except KeyboardInterrupt:  # it landed outside fit's own handling (before its try, or after it returned)
            outcomes.add("raised")
            timer.cancel()
        assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))  # no half-written file
        for path in folder.glob("*.safetensors"):
            ft.checkpoint_info(path)  # whole and readable
        current = state(model)
        assert any(all(torch.equal(current[k], s[k]) for k in s) for s in [start, *epochs]), trial
        resumed = run(model=net(), epochs=3, checkpoint_dir=folder)[0]
        assert_same(state(resumed), state(unbroken))
    assert "interrupted" in outcomes  # the trials did stop runs in the middle


def test_losses_left_on_the_device_give_the_same_run_and_the_host_reads_them_once_an_epoch(monkeypatch):
    """On a GPU the loop does not read each step's loss back (a sync per step); the CPU stands in for it here."""
    eager = run(epochs=3, regularizers=[ft.L2SP(net(), alpha=0.1)])
    monkeypatch.setattr(ft.train.loop, "_reads_each_step", lambda device, cfg: False)
    real = torch.Tensor.__float__
    reads = {}
    for batch in (16, 4):  # 6 and 24 steps an epoch
        counted = []
        monkeypatch.setattr(torch.Tensor, "__float__", lambda t: counted.append(1) or real(t))
        lazy = run(epochs=3, batch_size=batch, regularizers=[ft.L2SP(net(), alpha=0.1)])
        monkeypatch.setattr(torch.Tensor, "__float__", real)
        reads[batch] = (len(counted), len(lazy[1].steps))
        if batch == 16:
            assert_same_run(eager, lazy)
    assert reads[16][1] == 3 * 6 and reads[4][1] == 3 * 24
    assert reads[4][0] == reads[16][0], reads  # the reads do not grow with the steps: none is per step


def test_a_loss_that_diverges_on_the_device_stops_the_run_at_the_end_of_its_epoch_with_its_start_weights(monkeypatch):
    monkeypatch.setattr(ft.train.loop, "_reads_each_step", lambda device, cfg: False)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    ft.fit(model, blobs(), epochs=1, lr=1e-2, progress=False, live=False)
    good = state(model)
    with pytest.raises(ft.NonFiniteLossError) as caught:
        ft.fit(model, blobs(), epochs=3, lr=1e12, optimizer="sgd", schedule="constant", progress=False, live=False)
    history = caught.value.history
    first = next(s for s in history.steps if not math.isfinite(s["loss"]))
    assert f"at step {first['step']} (epoch 1)" in str(caught.value) and history.info["nonfinite"]
    assert not history.epochs
    assert_same(state(model), good)
