"""``fit`` in several processes (DDP over gloo on the CPU), started by torchrun and by accelerate launch.

tests/ddp_worker.py runs in each of 2 processes; here we read what each wrote.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import blobs
from torch.utils.data import DataLoader

import ftkit as ft
from ftkit.core.distributed import World
from ftkit.train.loop import _shares

WORKER = Path(__file__).with_name("ddp_worker.py")
TIMED = ("time_s", "samples_per_s", "peak_memory_mb")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(launcher: str, out: Path) -> list[dict]:
    if launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2",
                   "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no",
                   f"--main_process_port={_free_port()}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": ""}
    done = subprocess.run([*command, str(WORKER), str(out), launcher], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)], done


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_share_the_work_end_identical_and_write_one_checkpoint(tmp_path, launcher):
    ranks, done = _launch(launcher, tmp_path)
    first, second = ranks
    assert [r["rank"] for r in ranks] == [0, 1] and [r["main"] for r in ranks] == [True, False]
    # Identical weights (and BatchNorm statistics) in both processes.
    for key, value in first["straight"].items():
        assert torch.equal(value, second["straight"][key]), key
    # Each process trained on its half of the 90 examples every epoch: 45, not 90.
    assert first["seen"] == second["seen"] == [45] * 4
    # So each took half the optimizer steps one process would: ceil(ceil(45 / 8) / 2) = 3 an epoch, not 6.
    assert len(first["history"]["steps"]) == 4 * 3
    assert first["history"]["info"]["processes"] == 2
    # One writer: the main process wrote every checkpoint, the other none.
    assert first["writes"] == [("straight", e) for e in (1, 2, 3, 4)] + [("broken", e) for e in (1, 2, 3, 4)]
    assert second["writes"] == []
    assert sorted(p.name for p in (tmp_path / "straight").iterdir()) == ["best.safetensors", "last.safetensors"]
    # Bars and epoch lines come from the main process only: one line per epoch of the three runs (4 + 2 + 2).
    assert (done.stdout + done.stderr).count("train_loss") == 8
    # Metrics are over all processes: the same History in both; validation scored on all 41 examples.
    strip = lambda epochs: [{k: v for k, v in e.items() if k not in TIMED} for e in epochs]
    assert strip(first["history"]["epochs"]) == strip(second["history"]["epochs"])
    last = first["history"]["epochs"][-1]
    assert last["val_accuracy"] == first["full_val"]["accuracy"]
    assert last["val_loss"] == pytest.approx(first["full_val"]["loss"], rel=1e-6)
    # Interrupted after epoch 2 and resumed in a fresh model: bit-identical to the unbroken run.
    assert first["broken_epochs"] == 2
    for rank in ranks:
        for key, value in rank["straight"].items():
            assert torch.equal(value, rank["resumed"][key]), key
    assert [s["loss"] for s in first["resumed_history"]["steps"]] == [s["loss"] for s in first["history"]["steps"]]


def test_a_launch_without_its_rendezvous_says_how_to_start_it(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ft.ConfigError, match="torchrun --nproc_per_node"):
        ft.fit(torch.nn.Linear(6, 3), blobs(), epochs=1, progress=False)


def test_only_rank_zero_is_the_main_process(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not ft.is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert ft.is_main_process()


def test_each_process_validates_its_own_share_and_no_example_twice():
    train, val = blobs(10), blobs(7, seed=1)
    shares = [_shares(train, val, ft.TrainConfig(seed=5), World(r, 3, r)) for r in range(3)]
    seen = sorted(i for _, share in shares for i in share.indices)
    assert seen == list(range(7))
    sampler = shares[1][0]
    assert (sampler.num_replicas, sampler.rank, sampler.seed, sampler.shuffle) == (3, 1, 5, True)
    assert _shares(train, val, ft.TrainConfig(), World()) == (None, val)  # one process: all of it, fit's own order


def test_a_dataloader_cannot_be_split_between_processes_and_the_error_says_what_to_give():
    with pytest.raises(ft.ConfigError, match="give fit the Dataset"):
        _shares(DataLoader(blobs(), batch_size=8), None, ft.TrainConfig(), World(0, 2, 0))


def test_the_feature_cache_is_not_used_across_processes(monkeypatch):
    from ftkit.train.feature_cache import cache_decision

    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    ft.freeze(model)  # only the head trains: one process would cache the features
    assert cache_decision(model, blobs(), ft.TrainConfig(), "classification")[0] is not None
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cache_decision(model, blobs(), ft.TrainConfig(), "classification") == (None, "several processes train (DDP)")
