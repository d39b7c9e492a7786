"""Where training runs: device choice, mixed precision (AMP), seeding, memory.

One rule per concern, each a few lines, so the GPU path is as readable as the CPU one:

- device: CUDA when present, else Apple's MPS, else the CPU (``device=`` overrides).
- precision: on CUDA, autocast to bfloat16 where the GPU supports it (Ampere and
  newer), else float16 with a ``GradScaler`` (float16 has a narrow exponent range, so
  the loss is scaled up before backward to keep small gradients from flushing to
  zero; Micikevicius et al. 2018, "Mixed Precision Training"). CPU and MPS stay in float32.
- seeding: one seed sets Python's, NumPy's and torch's generators and a separate
  generator for the DataLoader's shuffling, so two runs on the CPU are bit-identical.

Example:
    >>> device = ft.pick_device()                 # cuda, mps or cpu
    >>> ctx = autocast(device, amp_dtype(device)) # nullcontext() on the CPU
"""
from __future__ import annotations

import math
import os
import random
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

try:
    import resource  # Unix only
except ImportError:  # Windows
    resource = None

_THREADS_AT_IMPORT = torch.get_num_threads()
_threads_set = False


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``device`` if given, else CUDA, else MPS, else CPU.

    Example:
        >>> ft.pick_device()        # device(type='cuda', index=0) on a GPU machine  # doctest: +SKIP
        >>> ft.pick_device("cpu")
        device(type='cpu')
    """
    if device is not None:
        try:
            device = torch.device(device)
        except RuntimeError as err:
            raise ConfigError(f"device={device!r} is not a device torch knows; use 'cpu', 'cuda', 'cuda:1' "
                             "or 'mps'.") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device='cuda' was asked for, but torch sees no CUDA GPU here "
                             "(torch.cuda.is_available() is False). Leave device out to use what is present.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def amp_dtype(device: torch.device, amp: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``device``: bfloat16 or float16 on CUDA, None (float32) elsewhere."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context manager that runs the forward pass in ``dtype``; a no-op when dtype is None."""
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A GradScaler for float16 training on CUDA (bfloat16 has float32's range and needs none)."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move the model to ``device``; on CUDA use channels_last memory for convolutional models.

    channels_last (NHWC) lets cuDNN use tensor-core kernels for convolutions without
    transposes; it changes nothing for models without ``nn.Conv2d``.
    """
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick the fastest conv algorithm per input shape
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            model.to(memory_format=torch.channels_last)
    return model


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a batch (tensor, tuple, list or dict) to ``device``.

    Copies are non-blocking (they overlap with compute when the DataLoader pins memory);
    4-D image batches go channels_last on CUDA to match ``prepare_model``.
    """
    if isinstance(batch, torch.Tensor):
        non_blocking = device.type == "cuda"
        if non_blocking and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def use_all_cores(device: torch.device) -> None:
    """On the CPU, let torch use every core this process may run on, unless the user chose a number.

    The user chose if ``OMP_NUM_THREADS`` is set or ``torch.set_num_threads`` was called
    after ftkit was imported. Done once per process.
    """
    global _threads_set
    if device.type != "cpu" or _threads_set:
        return
    _threads_set = True
    if "OMP_NUM_THREADS" in os.environ or torch.get_num_threads() != _THREADS_AT_IMPORT:
        return
    torch.set_num_threads(usable_cores())


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a container's CPU quota (cgroup v2).

    Binder and Docker often show the host's cores while allowing only one or two; more
    threads than allowed cores makes torch slower, not faster.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def seed_everything(seed: int | None) -> torch.Generator | None:
    """Seed Python, NumPy and torch (CPU and CUDA); return a generator for DataLoader shuffling.

    A separate shuffling generator means the order of batches does not depend on how
    many random numbers the model drew (dropout), so two strategies compared with the
    same seed see the same batches. ``seed=None`` leaves everything as it is.

    Example:
        >>> g = seed_everything(0)
        >>> loader = DataLoader(data, shuffle=True, generator=g)  # doctest: +SKIP
    """
    if seed is None:
        return None
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every random generator's state, to save in a checkpoint for an exact resume."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=True),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": generator.get_state() if generator is not None else None,
    }
    state["numpy"] = [state["numpy"][0], state["numpy"][1].tolist(), *state["numpy"][2:]]
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Restore what ``rng_state`` saved."""
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("loader") is not None:
        generator.set_state(state["loader"])


def release_device_memory(device: torch.device) -> None:
    """Hand the device's cached, unused memory back (after an out-of-memory error, before trying again)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: CUDA's max allocated since the last reset, else the process's peak RSS.

    The CPU number is the whole process's high-water mark since it started (the OS
    cannot reset it), so it includes the data and the Python interpreter.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        return torch.mps.driver_allocated_memory() / 2**20
    if resource is None:
        return float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
