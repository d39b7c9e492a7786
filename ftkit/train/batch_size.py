"""``find_batch_size``: the largest batch that fits in the device's memory, and the accumulation that keeps the effective batch.

A batch too big for the GPU ends in an out-of-memory error. Halving the batch and
accumulating the gradients of two half batches gives the same update (without BatchNorm,
exactly; with it, nearly), so the recipe does not change, only how it is split. This
tries one training step (forward, loss, backward; no optimizer step) at the asked size,
halving until it fits, and leaves the model exactly as it was.

Example:
    >>> size, accumulate = ft.find_batch_size(model, data.train, batch_size=64)  # doctest: +SKIP
    >>> ft.fit(model, data.train, data.val, batch_size=size, accumulate=accumulate)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.batches import compute_loss, forward_batch, make_loader, module_modes, resolve_task, restore_modes
from ..core.device import amp_dtype, autocast, pick_device, release_device_memory, to_device
from ..core.errors import ConfigError, DeviceMemoryError
from ..tuning.freeze import train_mode
from .checks import check_data


def find_batch_size(model: nn.Module, train: Any, *, batch_size: int = 64, accumulate: int = 1,
                    device: str | None = None, task: str | None = None, amp: bool = True) -> tuple[int, int]:
    """The largest batch size, halving from ``batch_size``, whose training step fits in memory; and its accumulation.

    Returns ``(size, accumulate)`` with ``size * accumulate == batch_size * accumulate``
    (sizes are halved, so a power of two divides evenly). The model's weights, buffers,
    gradients, modes and device placement are as before.

    Raises:
        DeviceMemoryError: even one example per batch does not fit.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size is a whole number >= 1; got {batch_size!r}.")
    dev = pick_device(device)
    task = resolve_task(model, train, task)
    check_data(model, train, task, "find_batch_size")
    effective = batch_size * accumulate
    size = batch_size
    while True:
        try:
            _one_step(model, train, size, dev, task, amp_dtype(dev, amp))
            return size, max(1, effective // size)
        except torch.OutOfMemoryError:
            release_device_memory(dev)
            if size == 1:
                raise DeviceMemoryError(f"Even a batch of one example does not fit in the {dev}'s memory: train "
                                        "fewer layers (ft.freeze_to), use mixed precision, shorter inputs, or a "
                                        "smaller model.") from None
            size = max(1, size // 2)


def _one_step(model: nn.Module, train: Any, size: int, device: torch.device, task: str, dtype) -> None:
    """Forward, loss and backward on one batch of ``size``; then the model as it was (no optimizer step)."""
    batch = next(iter(make_loader(train, size)))  # not shuffled: draws from no generator
    where = {p: p.device for p in model.parameters()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}  # BatchNorm statistics
    grads = {p: p.grad for p in model.parameters()}
    modes = module_modes(model)
    try:
        model.to(device)
        train_mode(model)
        with autocast(device, dtype):
            outputs, targets = forward_batch(model, to_device(batch, device))
            loss = compute_loss(task, outputs, targets)
        loss.backward()
    finally:
        outputs = targets = loss = None
        restore_modes(modes)
        for p, grad in grads.items():
            p.grad = grad
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        for p, dev in where.items():
            p.data = p.data.to(dev)
