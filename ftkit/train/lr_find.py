"""``lr_find``: the learning-rate range test, a short training run beside ``fit``.

It trains with the same batch rules, optimizer and frozen-module handling as ``fit``
while the LR grows exponentially, then puts the model back exactly as it was.

Example:
    >>> found = ft.lr_find(model, data.train)  # doctest: +SKIP
    >>> ft.fit(model, data.train, data.val, lr=found.suggestion)  # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.batches import compute_loss, forward_batch, make_loader, module_modes, resolve_task, restore_modes
from ..core.device import (
    amp_dtype,
    autocast,
    pick_device,
    prepare_model,
    rng_state,
    seed_everything,
    set_rng_state,
    to_device,
)
from ..tuning.freeze import train_mode
from .checks import check_data
from .config import make_config
from .optim import make_optimizer


@dataclass
class LRFindResult:
    """The LR range test: learning rates tried, smoothed losses, and the suggested rate."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # exponentially smoothed, bias-corrected
    raw_losses: list[float] = field(default_factory=list)
    suggestion: float = float("nan")  # steepest descent of the smoothed loss (log-LR axis), before its minimum
    lr_min: float = float("nan")  # the LR of the lowest smoothed loss, divided by 10
    method: str = "steepest"

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return (f"LRFindResult({len(self.lrs)} steps, suggestion={self.suggestion:.2e} (steepest descent), "
                f"lr_min={self.lr_min:.2e} (minimum / 10))")


def lr_find(model: nn.Module, train: Any, *, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
            config=None, **overrides) -> LRFindResult:
    """The learning-rate range test (Smith 2015, "Cyclical Learning Rates", section 3.3; fastai's lr_find).

    Trains for up to ``num_steps`` mini-batches while the LR grows exponentially from
    ``start_lr`` to ``end_lr`` (the same LR for every group), and stops when the smoothed
    loss passes 4x its minimum. ``suggestion`` is the LR where the smoothed loss falls
    fastest (steepest negative slope against log LR) on the way down to its minimum
    (past it, the loss is diverging); ``lr_min`` is the LR of the
    minimum divided by 10; both are fastai's older suggestions. Afterwards the model is
    exactly as before: weights, buffers (BatchNorm statistics), ``requires_grad`` flags,
    train/eval modes, device, and torch's random state.

    Example:
        >>> found = ft.lr_find(model, data.train)  # doctest: +SKIP
        >>> ft.fit(model, data.train, data.val, lr=found.suggestion)  # doctest: +SKIP
    """
    cfg = make_config(config, overrides)
    device = pick_device(cfg.device)
    task = resolve_task(model, train, cfg.task)
    check_data(model, train, task, "lr_find")
    params = dict(model.named_parameters())
    if not any(p.requires_grad for p in params.values()):
        raise ValueError("Every parameter is frozen, so there is nothing for lr_find to train. "
                         "Unfreeze what you will train first (e.g. ft.freeze(model) trains the head).")
    buffers = {(m, name): b for m in model.modules() for name, b in m._buffers.items() if b is not None}
    saved_params = {n: p.data.clone() for n, p in params.items()}
    saved_buffers = {k: b.clone() for k, b in buffers.items()}
    saved_flags = {n: p.requires_grad for n, p in params.items()}
    saved_modes = module_modes(model)
    saved_rng = rng_state()
    try:
        return _range_test(model, train, cfg, task, device, start_lr, end_lr, num_steps)
    finally:
        set_rng_state(saved_rng)
        for n, p in params.items():  # .data = the saved copy restores values, device and dtype exactly
            p.data = saved_params[n]
            p.grad = None
            p.requires_grad_(saved_flags[n])
        for (m, name), b in saved_buffers.items():
            m._buffers[name] = b
        restore_modes(saved_modes)


def _range_test(model, train, cfg, task, device, start_lr, end_lr, num_steps):
    generator = seed_everything(cfg.seed)
    loader = make_loader(train, cfg.batch_size, shuffle=True, generator=generator, device=device,
                         num_workers=cfg.num_workers)
    prepare_model(model, device)
    optimizer = make_optimizer(model, cfg.optimizer, start_lr, cfg.weight_decay, None, cfg.momentum)
    dtype = amp_dtype(device, cfg.amp)
    train_mode(model)
    result, avg, best, beta = LRFindResult(), 0.0, math.inf, 0.98
    batches = iter(loader)
    for i in range(num_steps):
        lr = start_lr * (end_lr / start_lr) ** (i / max(1, num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            batch = next(batches)
        except StopIteration:  # go round the data again
            batches = iter(loader)
            batch = next(batches)
        batch = to_device(batch, device)
        with autocast(device, dtype):
            out, y = forward_batch(model, batch)
            loss = compute_loss(task, out, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        raw = loss.item()
        avg = beta * avg + (1 - beta) * raw  # exponential moving average, then bias correction
        smooth = avg / (1 - beta ** (i + 1))
        result.lrs.append(lr)
        result.raw_losses.append(raw)
        result.losses.append(smooth)
        best = min(best, smooth)
        if not math.isfinite(smooth) or smooth > 4 * best:
            break
    result.suggestion, result.lr_min = suggest_lr(result.lrs, result.losses)
    return result


def suggest_lr(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steepest descent before the minimum, LR at the minimum / 10) of a smoothed LR-finder curve."""
    lrs_t, losses_t = torch.tensor(lrs, dtype=torch.float64), torch.tensor(losses, dtype=torch.float64)
    finite = torch.isfinite(losses_t)
    if finite.sum() < 3:
        return float("nan"), float("nan")
    lrs_t, losses_t = lrs_t[finite], losses_t[finite]
    lowest = int(losses_t.argmin())
    lr_min = float(lrs_t[lowest]) / 10
    if lowest < 2:
        return lr_min, lr_min
    # The steepest descent on the way down: past the minimum the loss is diverging, and a
    # drop there (noise, a lucky batch) is no rate to train at.
    slope = torch.gradient(losses_t[:lowest + 1], spacing=(lrs_t[:lowest + 1].log10(),))[0]
    return float(lrs_t[int(slope.argmin())]), lr_min
