"""Freezing and unfreezing parameters, with BatchNorm handled on purpose.

Freezing a layer means ``requires_grad = False`` on its parameters: no gradient, no
update. BatchNorm layers hide a trap: their running mean and variance are *buffers*,
updated by every forward pass in train mode whether or not the weights are frozen. The
PyTorch transfer-learning tutorial's "frozen" ResNet still drifts this way. So each
frozen BatchNorm gets an explicit mode:

- ``"frozen"`` (default): statistics and affine weights fixed. The layer stays in eval
  mode even after ``model.train()`` (a forward pre-hook puts it back), so it normalises
  exactly as it did in pre-training.
- ``"train"``: affine weights fixed, but statistics keep adapting to the new data, which
  can help under domain shift and hurts with small batches.

Example:
    >>> model = ft.load_model("resnet18", num_classes=10)  # doctest: +SKIP
    >>> ft.freeze(model)              # everything but the head  # doctest: +SKIP
    >>> ft.freeze_to(model, 3)        # groups 0, 1, 2 frozen; the rest trains  # doctest: +SKIP
    >>> ft.trainable_summary(model)  # doctest: +SKIP
"""
from __future__ import annotations

import re
from typing import Iterable

from torch import nn

from ..core.util import Table
from ..models.groups import layer_groups

BN_MODES = ("frozen", "train")


def freeze(model: nn.Module, patterns: str | Iterable[str] | None = None, *, bn: str = "frozen") -> nn.Module:
    """Freeze every layer group but the last (the head), or the parameters whose names match ``patterns``.

    ``patterns`` are regular expressions searched in parameter names, e.g.
    ``r"encoder\\.layer\\.[0-3]\\."``. Returns the model, changed in place.
    """
    _check_bn(bn)
    if patterns is None:
        return freeze_to(model, -1, bn=bn)
    regexes = _compile(patterns)
    hits = 0
    for name, p in model.named_parameters():
        if any(rx.search(name) for rx in regexes):
            p.requires_grad_(False)
            hits += 1
    if hits == 0:
        raise ValueError(f"No parameter name matches {patterns!r}. Parameter names look like "
                         f"{[n for n, _ in list(model.named_parameters())[:3]]}.")
    apply_bn_modes(model, bn)
    return model


def unfreeze(model: nn.Module, patterns: str | Iterable[str] | None = None) -> nn.Module:
    """Make every parameter trainable again (or those matching ``patterns``); BatchNorm trains normally."""
    regexes = None if patterns is None else _compile(patterns)
    for name, p in model.named_parameters():
        if regexes is None or any(rx.search(name) for rx in regexes):
            p.requires_grad_(True)
    apply_bn_modes(model, None)
    return model


def freeze_to(model: nn.Module, n: int, *, bn: str = "frozen") -> nn.Module:
    """Freeze layer groups ``[0, n)`` and make groups ``[n, end)`` trainable.

    Negative ``n`` counts from the end, as in fastai: ``freeze_to(model, -1)`` trains
    only the head, ``freeze_to(model, -2)`` the head and the last block, ``0`` trains all.
    """
    _check_bn(bn)
    groups = layer_groups(model)
    if isinstance(n, bool) or not isinstance(n, int) or not -len(groups) <= n <= len(groups):
        raise ValueError(f"freeze_to needs a whole number n with {-len(groups)} <= n <= {len(groups)} "
                         f"(this model has {len(groups)} layer groups: {[g.name for g in groups]}); got {n!r}.")
    cut = n % len(groups) if n < 0 else n
    for i, group in enumerate(groups):
        for p in group.params:
            p.requires_grad_(i >= cut)
    apply_bn_modes(model, bn)
    return model


def bn_mode(module: nn.Module) -> str | None:
    """A BatchNorm layer's mode: "frozen", "train" (frozen weights, moving statistics) or None (trains normally)."""
    return getattr(module, "_ftkit_bn_mode", None)


def _is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _keep_eval(module: nn.Module, args) -> None:
    # Runs before every forward: undoes model.train() for this layer, so it normalises
    # with, and never updates, its running statistics.
    module.training = False


def apply_bn_modes(model: nn.Module, mode: str | None) -> None:
    """Give each BatchNorm whose parameters are all frozen the mode (None: keep its mode); reset the others.

    A BatchNorm without parameters (``affine=False``) follows the layer it normalises: the
    nearest module before it, in the model's order, that has parameters of its own.
    """
    for module, frozen in _bn_frozen(model):
        new_mode = mode or bn_mode(module) or "frozen"
        for key, hook in list(module._forward_pre_hooks.items()):
            if hook is _keep_eval:
                del module._forward_pre_hooks[key]
        if frozen:
            module._ftkit_bn_mode = new_mode
            if new_mode == "frozen":
                module.register_forward_pre_hook(_keep_eval)
                module.eval()
            else:
                module.train(model.training)
        elif hasattr(module, "_ftkit_bn_mode"):
            del module._ftkit_bn_mode
            module.train(model.training)


def _bn_frozen(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Every BatchNorm layer, and whether it counts as frozen."""
    out, before = [], None  # before: are the parameters of the last parameterised module seen all frozen?
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if _is_bn(module):
            own = not any(p.requires_grad for p in params) if params else None
            frozen = own if own is not None else (before if before is not None else _all_frozen(model))
            out.append((module, bool(frozen)))
        if params:
            before = not any(p.requires_grad for p in params)
    return out


def _all_frozen(model: nn.Module) -> bool:
    params = list(model.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def trainable_summary(model: nn.Module) -> Table:
    """Per layer group: parameters, trainable parameters, their share, and the BatchNorm mode.

    Prints as text; shows as a table in a notebook. ``.rows`` holds the numbers.
    """
    rows = []
    total = trainable = 0
    group_of_module = _bn_groups(model)
    for i, g in enumerate(layer_groups(model)):
        modes = {bn_mode(m) or "trains" for m in group_of_module.get(i, [])}
        rows.append({
            "group": g.name,
            "params": g.numel,
            "trainable": g.trainable,
            "trainable %": round(100.0 * g.trainable / g.numel, 1) if g.numel else 0.0,
            "BatchNorm": "-" if not modes else (modes.pop() if len(modes) == 1 else "mixed"),
        })
        total += g.numel
        trainable += g.trainable
    share = 100.0 * trainable / total if total else 0.0
    name = getattr(getattr(model, "ftkit_card", None), "name", type(model).__name__)
    return Table(rows, title=f"{name}: trainable parameters by layer group",
                 footer=f"trainable: {trainable:,} of {total:,} ({share:.2f}%)")


def bn_drift(before: nn.Module, after: nn.Module) -> Table:
    """Per BatchNorm layer: how far its running statistics moved from ``before`` to ``after``.

    ``mean shift`` is the mean over channels of ``|mu - mu0| / sigma0``: how many of the
    starting standard deviations each channel's running mean moved. ``std change`` is the
    mean of ``|sigma / sigma0 - 1|``. Both are exactly 0 when the statistics did not move.
    ``mode`` is the layer's mode in ``after``: "frozen", "train" (``bn_mode``), "trains" (its
    weights train) or "weights frozen by hand" (``requires_grad`` off without ``ft.freeze``:
    its statistics follow ``model.train()``). Layers are matched by name, input to output.

    Example:
        >>> start = copy.deepcopy(model)  # doctest: +SKIP
        >>> ft.fit(model, data.train, epochs=1)  # doctest: +SKIP
        >>> ft.bn_drift(start, model)          # did the "frozen" BatchNorm layers move?  # doctest: +SKIP
    """
    start = {name: m for name, m in before.named_modules() if _is_bn(m) and m.running_mean is not None}
    rows = []
    for name, m in after.named_modules():
        if name not in start or not _is_bn(m) or m.running_mean is None:
            continue
        m0 = start[name]
        mu0, sd0 = m0.running_mean.detach().double().cpu(), (m0.running_var.detach().double().cpu() + m0.eps).sqrt()
        mu, sd = m.running_mean.detach().double().cpu(), (m.running_var.detach().double().cpu() + m.eps).sqrt()
        frozen = not any(p.requires_grad for p in m.parameters(recurse=False))
        rows.append({"layer": name, "mode": bn_mode(m) or ("weights frozen by hand" if frozen else "trains"),
                     "mean shift": float(((mu - mu0).abs() / sd0).mean()),
                     "std change": float((sd / sd0 - 1).abs().mean())})
    if not rows:
        raise ValueError(f"{type(after).__name__} has no BatchNorm layer with running statistics that "
                         f"{type(before).__name__} also has (matched by name), so there is no drift to measure.")
    moved = sum(1 for r in rows if r["mean shift"] or r["std change"])
    return Table(rows, title="BatchNorm running statistics: change from the start",
                 footer=f"{moved} of {len(rows)} BatchNorm layers moved")


def _bn_groups(model: nn.Module) -> dict[int, list[nn.Module]]:
    index = {name: i for i, g in enumerate(layer_groups(model)) for name in g.names}
    out: dict[int, list[nn.Module]] = {}
    for name, module in model.named_modules():
        if _is_bn(module):
            key = next((f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)), None)
            if key in index:
                out.setdefault(index[key], []).append(module)
    return out


def _check_bn(bn: str) -> None:
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {BN_MODES}: 'frozen' keeps BatchNorm statistics fixed, "
                         f"'train' lets them adapt to the new data; got {bn!r}.")


def _compile(patterns) -> list[re.Pattern]:
    if isinstance(patterns, str):
        patterns = [patterns]
    try:
        return [re.compile(p) for p in patterns]
    except re.error as err:
        raise ValueError(f"Not a valid regular expression in {patterns!r}: {err}") from err


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, then eval mode for every submodule whose parameters are all frozen.

    This is how ``fit`` trains: a frozen part is a fixed function, so its dropout is off and
    its BatchNorm statistics stay put (a BatchNorm marked ``bn="train"`` keeps adapting).
    Modules without parameters outside frozen parts, such as a dropout right before the
    head, keep training behaviour.

    Example:
        >>> ft.freeze(model)  # doctest: +SKIP
        >>> ft.train_mode(model)          # model.train(), but the frozen backbone in eval mode  # doctest: +SKIP
    """
    model.train()
    _eval_frozen(model)
    return model


def _eval_frozen(module: nn.Module) -> None:
    for child in module.children():
        params = list(child.parameters())
        if params and not any(p.requires_grad for p in params):
            child.eval()
            for m in child.modules():  # statistics marked to keep adapting (ft.freeze(bn="train"))
                if bn_mode(m) == "train":
                    m.train()
        else:
            _eval_frozen(child)
