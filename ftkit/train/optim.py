"""Optimizers, parameter groups, discriminative learning rates and LR schedules.

Parameter groups. Each layer group (``ft.layer_groups``: input -> output, head last)
becomes up to two optimizer param groups: its matrices and convolution kernels, which
get weight decay, and its 1-D parameters (biases, LayerNorm/BatchNorm scales and
shifts), which do not: decaying a normalisation scale towards zero fights the
normalisation itself (the convention of BERT, nanoGPT and timm). A Vision Transformer's
position embeddings and class tokens are exempt too (``NO_DECAY_NAMES``, and a timm
model's own ``no_weight_decay()``). Every parameter of the
model goes in, frozen ones too: torch's optimizers skip a parameter whose ``.grad`` is
None, so a frozen parameter costs nothing and is never decayed, and when gradual
unfreezing makes it trainable it starts updating with its group's LR while the
parameters that were already training keep their optimizer state.

Discriminative learning rates (ULMFiT, Howard & Ruder 2018): early layers hold generic
features and should move less than the new head. ``lr=slice(lo, hi)`` spreads rates
geometrically from ``lo`` (first group) to ``hi`` (head), as fastai does; ``lr_mult``
gives one multiplier per group explicitly.

Schedules are one formula each (``lr_factor``), applied per optimizer step with torch's
``LambdaLR``, whose state is plain numbers (so checkpoints resume exactly).

Example:
    >>> groups = param_groups(model, lr=slice(1e-5, 1e-3), weight_decay=0.01)  # doctest: +SKIP
    >>> optimizer = torch.optim.AdamW(groups)  # doctest: +SKIP
    >>> ft.optimizer_summary(optimizer)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..core.errors import ConfigError
from ..core.schedules import lr_factor, warmup_steps
from ..core.util import Table, suggest
from ..models.groups import layer_groups

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
# Parameters that are not weight matrices though they have more than one dimension: a Vision
# Transformer's position embeddings and class (or distillation, mask, register) tokens. Decay would
# pull them towards 0; timm exempts them too.
NO_DECAY_NAMES = frozenset({"pos_embed", "pos_embedding", "position_embeddings", "cls_token", "class_token",
                            "dist_token", "mask_token", "register_tokens"})


def group_lrs(lr: float | slice, n_groups: int, lr_mult: Sequence[float] | None = None) -> list[float]:
    """One learning rate per layer group (input -> output).

    - a number: the same rate everywhere (times ``lr_mult[i]`` when given);
    - ``slice(lo, hi)``: geometric from ``lo`` to ``hi`` (fastai's ``even_mults``), head = hi;
    - ``slice(hi)``: ``hi/10`` for every group but the head, which gets ``hi`` (fastai).

    Example:
        >>> group_lrs(slice(1e-4, 1e-2), 3)
        [0.0001, 0.001, 0.01]
    """
    if isinstance(lr, slice):
        if lr_mult is not None:
            raise ValueError("Give either lr=slice(lo, hi) or lr_mult=[...], not both: both set per-group rates.")
        lo, hi = lr.start, lr.stop
        if hi is None or hi <= 0 or (lo is not None and not 0 < lo <= hi):
            raise ValueError(f"lr=slice(lo, hi) needs 0 < lo <= hi (or slice(hi)); got {lr!r}.")
        if lo is None:
            return [hi / 10] * (n_groups - 1) + [hi]
        if n_groups == 1:
            return [hi]
        step = (hi / lo) ** (1 / (n_groups - 1))
        return [lo * step**i for i in range(n_groups - 1)] + [hi]
    if lr_mult is None:
        return [float(lr)] * n_groups
    if len(lr_mult) != n_groups:
        raise ValueError(f"lr_mult has {len(lr_mult)} multipliers but the model has {n_groups} layer groups; "
                         "ft.layer_groups(model) lists them (input -> output, head last).")
    return [float(lr) * float(m) for m in lr_mult]


def param_groups(model: nn.Module, lr: float | slice, weight_decay: float = 0.0,
                 lr_mult: Sequence[float] | None = None) -> list[dict]:
    """Optimizer param groups: per layer group, decayed matrices and undecayed 1-D params.

    Each dict also carries ``group`` (the layer group's name), ``layer`` (its index) and
    ``names`` (parameter names), which torch keeps in ``optimizer.state_dict()``.

    Example:
        >>> torch.optim.AdamW(param_groups(model, lr=1e-3, weight_decay=0.01))  # doctest: +SKIP
    """
    groups = layer_groups(model)
    lrs = group_lrs(lr, len(groups), lr_mult)
    exempt = set(getattr(model, "no_weight_decay", lambda: ())())  # timm models name theirs
    decays = lambda name, p: p.ndim > 1 and name not in exempt and name.rsplit(".", 1)[-1] not in NO_DECAY_NAMES
    out = []
    for index, (group, group_lr) in enumerate(zip(groups, lrs)):
        for decay in (True, False):
            names = [n for n, p in zip(group.names, group.params) if decays(n, p) == decay]
            params = [p for n, p in zip(group.names, group.params) if decays(n, p) == decay]
            if params:
                out.append({"params": params, "lr": group_lr, "weight_decay": weight_decay if decay else 0.0,
                            "group": group.name, "layer": index, "names": names})
    return out


def make_optimizer(model: nn.Module, name: str = "adamw", lr: float | slice = 1e-3, weight_decay: float = 0.01,
                   lr_mult: Sequence[float] | None = None, momentum: float = 0.9) -> torch.optim.Optimizer:
    """The optimizer ``fit`` uses, built on ``param_groups``.

    - "adamw": Adam with decoupled weight decay (Loshchilov & Hutter 2019), the default.
    - "adam": Adam; its weight_decay is an L2 term added to the gradient (coupled), which
      Adam's per-parameter scaling weakens for parameters with large gradients.
    - "sgd": SGD with momentum. "rmsprop": RMSprop (Hinton's lecture 6e), torch's defaults.

    Adam and AdamW run torch's fused kernel (``fused=True``) where the parameters' device
    and dtypes have one (CPU and CUDA): the same update in one pass over all the weights
    instead of several small operations per tensor, 5-7x faster on a CPU for a MiniLM step.
    It rounds differently from the per-tensor loop in the last bit, so a hand-written loop
    that should match ``fit`` bit for bit uses ``torch.optim.AdamW(..., fused=True)`` too.

    Example:
        >>> optimizer = make_optimizer(model, "adamw", lr=slice(1e-5, 1e-3))  # doctest: +SKIP
    """
    groups = param_groups(model, lr, weight_decay, lr_mult)
    head_lr = groups[-1]["lr"]
    if name in ("adamw", "adam"):
        adam = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        return adam(groups, lr=head_lr, fused=True) if _fused_kernel(groups) else adam(groups, lr=head_lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=head_lr, momentum=momentum)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=head_lr)
    raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.{suggest(str(name), OPTIMIZERS)}")


def _fused_kernel(groups: list[dict]) -> bool:
    """Whether torch's fused Adam kernel takes these parameters: real floating point, on the CPU or CUDA."""
    params = [p for g in groups for p in g["params"]]
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   warmup: int | float | None = None, steps_per_epoch: int = 1, step_size: int = 0,
                   gamma: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepping once per optimizer step with ``lr_factor``'s schedule."""
    steps = warmup_steps(warmup, total_steps, schedule)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(schedule, total_steps, steps, steps_per_epoch, step_size, gamma))


def optimizer_summary(optimizer: torch.optim.Optimizer) -> Table:
    """Per param group: layer group, parameters (trainable), learning rate, weight decay.

    Example:
        >>> ft.optimizer_summary(optimizer)  # doctest: +SKIP
    """
    rows = []
    for g in optimizer.param_groups:
        rows.append({
            "group": g.get("group", "?"),
            "kind": "weights" if g["weight_decay"] else "1-D (no decay)",
            "params": sum(p.numel() for p in g["params"]),
            "trainable": sum(p.numel() for p in g["params"] if p.requires_grad),
            "lr": g["lr"],
            "weight_decay": g["weight_decay"],
        })
    return Table(rows, title=f"{type(optimizer).__name__} parameter groups",
                 footer="frozen parameters stay in their group: no gradient, so no update and no decay")
