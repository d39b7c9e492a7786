"""Training on several processes (several GPUs): ``fit`` under ``torchrun`` or ``accelerate launch``.

The engine is PyTorch's own: ``torch.distributed`` and ``DistributedDataParallel`` (DDP).
A launcher starts one process per device and tells each its place in environment
variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
``torchrun`` and ``accelerate launch`` both do. ``fit`` reads them, so the same script runs
on one device or on several without a change:

- each process trains on its own device (``cuda:LOCAL_RANK``; the CPU with the gloo backend);
- each takes every ``WORLD_SIZE``-th example of the shuffled training set
  (``DistributedSampler``, seeded with the run's seed and the epoch, so every process agrees
  on the order); ``batch_size`` is per process, so the effective batch is
  ``batch_size * accumulate * WORLD_SIZE``;
- DDP averages the gradients after each backward, so every process takes the same step and
  the copies of the model stay identical;
- metrics are over all processes: the training loss and accuracy are summed across them,
  and validation is split between them and its predictions gathered before scoring;
- only the main process (rank 0) writes checkpoints and shows bars, lines and plots.

Example: ``train.py``, unchanged from a single-device script, started with
``torchrun --nproc_per_node=4 train.py`` or ``accelerate launch --multi_gpu --num_processes 4 train.py``:

    >>> history = ft.fit(model, data.train, data.val, epochs=3, checkpoint_dir="runs/pets")  # doctest: +SKIP
    >>> if ft.is_main_process():  # doctest: +SKIP
    ...     ft.save_checkpoint(model, "pets.safetensors")
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among ``size`` processes, and its rank on this machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def world() -> World:
    """This process's place: from the initialised process group, else the launcher's environment."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return World(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True in the process that should write files and print (rank 0); always True on one device.

    Example:
        >>> ft.is_main_process()
        True
    """
    return world().main


def launched_device(device: torch.device, requested: Any) -> torch.device:
    """The device of this process in a launched run: ``cuda:LOCAL_RANK`` when training on CUDA."""
    here = world()
    if not here.distributed or device.type != "cuda":
        return device
    if requested is not None and torch.device(requested).index is not None:
        raise ConfigError(f"device={requested!r} names one GPU, but this run has {here.size} processes (torchrun or "
                          "accelerate launch), each on its own GPU (cuda:LOCAL_RANK). Use device='cuda' or leave it out.")
    if here.local_rank >= torch.cuda.device_count():
        raise ConfigError(f"This process has LOCAL_RANK={here.local_rank} but torch sees "
                          f"{torch.cuda.device_count()} GPU(s): start at most one process per GPU "
                          "(torchrun --nproc_per_node=N with N <= the number of GPUs).")
    torch.cuda.set_device(here.local_rank)
    return torch.device("cuda", here.local_rank)


def init_process_group(device: torch.device) -> World:
    """Join the launcher's process group (once per process) and return this process's place.

    Uses the group the user set up when there is one; otherwise NCCL for CUDA and gloo for
    the CPU, from the launcher's environment variables. The group is closed when the
    process exits.
    """
    here = world()
    if not here.distributed or dist.is_initialized():
        return here
    if not dist.is_available():
        raise ConfigError("This process was launched as one of several (WORLD_SIZE > 1), but this build of torch "
                          "has no torch.distributed. Run it as a single process, or install a build with it.")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT", "RANK") if name not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={here.size} is set but {', '.join(missing)} is not: start the script with "
                          "torchrun --nproc_per_node=N script.py (or accelerate launch), which sets them all.")
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(_close_group)
    return world()


def _close_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` over the parameters that train now.

    DDP registers the parameters that require gradients when it is built, and copies rank
    0's weights and buffers to every process; ``fit`` builds it again when gradual unfreezing
    changes what trains.
    """
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_sum(values: list[Any], device: torch.device) -> list[float]:
    """Each number (or 0-d tensor) summed over every process."""
    flat = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
    dist.all_reduce(flat)
    return flat.tolist()


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """A tensor averaged over every process (stays on the device: no wait for the host)."""
    value = value.detach().float().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def shard(data: Any, here: World) -> Any:
    """Every ``size``-th example from ``rank`` on, for validation: no example twice, none left out."""
    return torch.utils.data.Subset(data, range(here.rank, len(data), here.size))


def gather_collected(run: dict) -> dict:
    """A validation pass (``collect``'s dict) of every process's share, as if one process had run it all."""
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, {k: run[k] for k in ("loss_sum", "items", "preds", "targets", "outputs")})
    items = sum(p["items"] for p in parts)
    cat = lambda key: torch.cat([p[key] for p in parts]) if parts[0][key] is not None else None
    loss_sum = sum(p["loss_sum"] for p in parts)
    return {"loss": loss_sum / items if items else float("nan"), "loss_sum": loss_sum, "items": items,
            "preds": cat("preds"), "targets": cat("targets"), "outputs": cat("outputs")}


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
