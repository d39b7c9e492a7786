"""One process of tests/test_distributed.py's runs: started twice by torchrun (or accelerate launch).

Trains the same small network three ways, each with ``ft.fit`` unchanged (accumulation,
clipping, gradual unfreezing, a BatchNorm, dropout): straight through with a checkpoint
folder; interrupted after an epoch and then resumed in a fresh model; and writes what the
test compares to ``<out>/rank<R>.pt``: final weights, the examples each epoch showed
this process, the checkpoint writes this process made, and the History.
"""
import os
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import blobs, state  # noqa: E402

import ftkit as ft  # noqa: E402
import ftkit.train.loop as loop  # noqa: E402

out = Path(sys.argv[1])
launcher = sys.argv[2]
rank = int(os.environ["RANK"])
writes = []
real_save_run = loop.save_run


def counting_save_run(folder, epoch, *args, **kwargs):
    writes.append((Path(folder).name, epoch))
    return real_save_run(folder, epoch, *args, **kwargs)


loop.save_run = counting_save_run


def net():
    torch.manual_seed(1)  # every process starts from the same weights, as it would from a checkpoint
    return nn.Sequential(
        nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2)),
        nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.2)),
        nn.Linear(16, 3),
    )


def counter(model, seen):
    """Counts the training examples this process's forward passes see, per epoch (validation is not counted)."""
    def hook(module, inputs):
        if module.training:
            seen[-1] += len(inputs[0])
    return model.register_forward_pre_hook(hook)


class EpochMarks:
    def __init__(self, seen, stop_after=None):
        self.seen, self.stop_after = seen, stop_after

    def on_epoch_end(self, epoch, history, model):
        if self.stop_after is not None and epoch + 1 == self.stop_after:
            raise KeyboardInterrupt  # every process stops after the same epoch
        self.seen.append(0)


train, val = blobs(90), blobs(41, seed=1)  # sizes the processes cannot split evenly
common = dict(epochs=4, batch_size=8, accumulate=2, clip=1.0, lr=slice(1e-3, 1e-2), unfreeze_every=2,
              schedule="cosine", seed=3, progress=True)

straight, seen = net(), [0]
handle = counter(straight, seen)
h_straight = ft.fit(straight, train, val, checkpoint_dir=out / "straight", callbacks=[EpochMarks(seen)], **common)
handle.remove()

broken = net()
h_broken = ft.fit(broken, train, val, checkpoint_dir=out / "broken", callbacks=[EpochMarks([0], stop_after=2)],
                  **common)
resumed = net()  # a fresh process would start from a fresh model
h_resumed = ft.fit(resumed, train, val, checkpoint_dir=out / "broken", **common)

full_val = ft.evaluate(straight, val)  # one process, all of the validation set
torch.save({"rank": rank, "launcher": launcher, "straight": state(straight), "resumed": state(resumed),
            "seen": seen[:-1], "writes": writes, "history": h_straight.to_dict(),
            "resumed_history": h_resumed.to_dict(), "broken_epochs": len(h_broken.epochs),
            "full_val": {"loss": full_val["loss"], "accuracy": full_val["accuracy"]},
            "main": ft.is_main_process()}, out / f"rank{rank}.pt")
