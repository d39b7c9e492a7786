"""Regularisation for fine-tuning: dropout, L1, L2-SP, EWC and rehearsal.

A regularizer is an object with ``.penalty(model) -> tensor`` (added to the loss by
``ft.fit(..., regularizers=[...])`` and logged apart from it: ``history.steps[i]["penalty"]``,
``history.epochs[e]["penalties"][name]``), a ``.name``, and ``.needs_backbone``
(False when it only reads parameters, which lets fit's feature cache run).

- ``L1``: ``strength * sum |w|`` over trainable weight matrices: pushes weights towards 0. With
  gradient (or Adam) steps they hover around 0 rather than land on it; exact zeros need a proximal
  step (soft-thresholding after each update).
- ``L2SP``: pull the weights back toward the pre-trained ones, not toward 0 (Li, Grandvalet
  & Davoine 2018). Plain weight decay (L2 toward 0) forgets what pre-training learned;
  ``fit``'s ``weight_decay`` is that, applied to weight matrices only (``ftkit.train.optim``).
- ``EWC``: the same pull, weighted per parameter by how much the source task's
  log-likelihood depends on it: the diagonal Fisher information (Kirkpatrick et al. 2017).
- ``Rehearsal``: keep training on source-task examples through the source head while
  fine-tuning, so the backbone keeps serving the old task (experience replay).

``generalization_gap`` measures what they fight: train minus held-out accuracy (and loss).

Other regularisers live elsewhere: weight decay is ``fit(weight_decay=...)``, early
stopping is ``fit(patience=..., min_delta=..., restore_best=True)``, data augmentation is
``load_dataset(..., augment="light")``. Dropout rates change with ``set_dropout`` and
``add_dropout_before_head`` below. Note that ``fit`` runs frozen parts of a model in
eval mode, so dropout only acts in the parts that train.

Example:
    >>> source = copy.deepcopy(model)                 # before fine-tuning  # doctest: +SKIP
    >>> ft.fit(model, data.train, data.val, regularizers=[ft.L2SP(model, alpha=0.1)])  # doctest: +SKIP
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.batches import compute_loss, forward_batch, make_loader, module_modes, resolve_task, restore_modes
from ..core.device import to_device
from ..models.groups import head_modules, head_name

# --- dropout -------------------------------------------------------------------------------


def set_dropout(model: nn.Module, p: float) -> int:
    """Set the rate of every dropout in the model to ``p``; return how many rates changed.

    Changes ``nn.Dropout`` layers (and their 1d/2d/3d/alpha cousins), ``DropoutLinear``
    heads, and float attributes named ``*dropout*`` that some Hugging Face modules read
    in forward (e.g. an attention module's ``attention_dropout``). ``model.config`` is left
    as it was.

    Example:
        >>> ft.set_dropout(model, 0.3)  # doctest: +SKIP
        13
    """
    _check_p(p)
    changed = 0
    for module in model.modules():
        if isinstance(module, (nn.modules.dropout._DropoutNd, DropoutLinear)):
            module.p = float(p)
            changed += 1
            continue
        for attr, value in vars(module).items():
            if "dropout" in attr and isinstance(value, float) and not isinstance(value, bool):
                setattr(module, attr, float(p))
                changed += 1
    return changed


class DropoutLinear(nn.Linear):
    """A Linear layer that applies dropout to its input first: a head with dropout in front.

    It is still an ``nn.Linear`` with the same parameter names, so the head keeps its name,
    checkpoints and ``save_pretrained`` files stay compatible, and ``fit``'s feature cache
    (which caches the head's input) trains it with the dropout on.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.5,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.dropout(x, self.p, self.training))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


def add_dropout_before_head(model: nn.Module, p: float = 0.5) -> nn.Module:
    """Dropout on the head's input (Srivastava et al. 2014), in place.

    Where the model already has a dropout right before its head (Hugging Face
    classifiers, torchvision's MobileNet and EfficientNet), its rate becomes ``p``. Else the
    head (an ``nn.Linear``) becomes a ``DropoutLinear`` with the same weights and name.

    Example:
        >>> ft.add_dropout_before_head(model, 0.5)  # doctest: +SKIP
        >>> model.fc  # doctest: +SKIP
        DropoutLinear(in_features=512, out_features=10, bias=True, p=0.5)
    """
    _check_p(p)
    name = head_name(model)
    head = model.get_submodule(name)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    existing = None
    if isinstance(parent, nn.Sequential) and child.isdigit() and int(child) > 0:
        before = parent[int(child) - 1]  # Sequential(..., Dropout, Linear)
        existing = before if isinstance(before, nn.modules.dropout._DropoutNd) else None
    elif hasattr(model, "config") and isinstance(getattr(parent, "dropout", None), nn.modules.dropout._DropoutNd):
        existing = parent.dropout  # Hugging Face: self.classifier(self.dropout(pooled))
    if existing is not None:
        existing.p = float(p)
        return model
    if isinstance(head, DropoutLinear):
        head.p = float(p)
        return model
    if type(head) is not nn.Linear:
        raise TypeError(f"The head {name!r} is a {type(head).__name__}; add_dropout_before_head turns an "
                        "nn.Linear head into a DropoutLinear. Put a dropout in yourself, e.g. "
                        "nn.Sequential(nn.Dropout(p), head).")
    new = DropoutLinear(head.in_features, head.out_features, head.bias is not None, p,
                        device=head.weight.device, dtype=head.weight.dtype)
    new.load_state_dict(head.state_dict())
    new.requires_grad_(head.weight.requires_grad)
    model.set_submodule(name, new)
    return model


def _check_p(p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"A dropout rate is a probability in [0, 1), e.g. 0.1 or 0.5; got {p!r}.")


# --- penalties on the weights ------------------------------------------------------------------


class L1:
    """``strength * sum |w|`` over the trainable weight matrices (biases and norms are left alone).

    Example:
        >>> ft.fit(model, train, val, regularizers=[ft.L1(1e-5)])  # doctest: +SKIP
    """

    needs_backbone = False  # reads parameters only

    def __init__(self, strength: float = 1e-5, name: str = "l1"):
        if not strength >= 0:
            raise ValueError(f"L1 strength must be >= 0; got {strength!r}.")
        self.strength, self.name = float(strength), name

    def penalty(self, model: nn.Module) -> torch.Tensor:
        weights = [p.abs().sum() for p in model.parameters() if p.requires_grad and p.ndim > 1]
        return self.strength * torch.stack(weights).sum() if weights else torch.zeros(())

    def __repr__(self) -> str:
        return f"L1(strength={self.strength:g})"


class L2SP:
    """L2-SP (Li, Grandvalet & Davoine 2018, "Explicit inductive bias for transfer learning with CNNs").

    ``alpha/2 * ||w - w0||^2`` over the pre-trained parameters that train, where ``w0``
    is a snapshot taken when the regularizer is made, plus ``beta/2 * ||w||^2`` over the
    new ones: the head, and any parameter not in the snapshot (LoRA, adapters). The
    first part is exactly 0 at the start and its gradient, ``alpha * (w - w0)``, points
    back to the pre-trained weights. Use it with ``weight_decay=0``: decay pulls toward 0.

    Example:
        >>> l2sp = ft.L2SP(model, alpha=0.1, beta=1e-4)     # right after load_model  # doctest: +SKIP
        >>> ft.fit(model, train, val, weight_decay=0.0, regularizers=[l2sp])  # doctest: +SKIP
    """

    needs_backbone = False

    def __init__(self, model: nn.Module, alpha: float = 1e-2, beta: float = 1e-4, name: str = "l2sp"):
        if not (alpha >= 0 and beta >= 0):
            raise ValueError(f"L2SP alpha and beta must be >= 0; got alpha={alpha!r}, beta={beta!r}.")
        self.alpha, self.beta, self.name = float(alpha), float(beta), name
        self.head = _head_prefix(model)
        self.start = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith(self.head)}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        to_start, to_zero = [], []
        for n, p in model.named_parameters():
            if not p.requires_grad:
                continue
            w0 = self.start.get(n)
            if n.startswith(self.head) or w0 is None or w0.shape != p.shape:
                to_zero.append(p.pow(2).sum())
                continue
            if w0.device != p.device:
                w0 = self.start[n] = w0.to(p.device)  # moved once, when fit moves the model
            to_start.append((p - w0).pow(2).sum())
        total = torch.zeros((), device=_device(model))
        if to_start:
            total = total + self.alpha / 2 * torch.stack(to_start).sum()
        if to_zero:
            total = total + self.beta / 2 * torch.stack(to_zero).sum()
        return total

    def __repr__(self) -> str:
        return f"L2SP(alpha={self.alpha:g}, beta={self.beta:g}, {len(self.start)} pre-trained tensors)"


class EWC:
    """Elastic weight consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting").

    ``lam/2 * sum_i F_i (w_i - w*_i)^2`` over the shared (backbone) parameters, where
    ``w*`` are the source model's weights and ``F`` the diagonal of the Fisher information
    on the source task: the empirical Fisher, the mean over ``samples`` source examples of
    the squared per-example gradient of the log-likelihood of the true label, computed with
    the model's own source head, in eval mode. Parameters the source task relies on are
    held firmly, the others move freely. With ``F = 0`` it is plain fine-tuning.

    Make it from the source model before replacing the head; ``fisher=`` skips the estimate.

    Example:
        >>> ewc = ft.EWC(model, source.train, lam=1000)      # model still has its source head  # doctest: +SKIP
        >>> ft.replace_head(model, 10)  # doctest: +SKIP
        >>> ft.fit(model, target.train, target.val, regularizers=[ewc])  # doctest: +SKIP
    """

    needs_backbone = False

    def __init__(self, model: nn.Module, source_data: Any = None, lam: float = 1000.0, samples: int = 256,
                 batch_size: int = 32, *, fisher: dict[str, torch.Tensor] | None = None, name: str = "ewc"):
        if not lam >= 0:
            raise ValueError(f"EWC lam must be >= 0; got {lam!r}.")
        self.lam, self.name = float(lam), name
        head = _head_prefix(model)
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith(head)}
        if fisher is None:
            if source_data is None:
                raise ValueError("EWC needs source_data (examples of the source task) to estimate the Fisher "
                                 "information, or a ready fisher={name: tensor} dict.")
            fisher = diagonal_fisher(model, source_data, samples, batch_size, names=list(self.anchor))
        self.fisher = {n: f.detach().to(self.anchor[n].device) for n, f in fisher.items() if n in self.anchor}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        terms = []
        for n, p in model.named_parameters():
            f = self.fisher.get(n)
            if f is None or not p.requires_grad or f.shape != p.shape:
                continue
            if f.device != p.device:
                f = self.fisher[n] = f.to(p.device)
                self.anchor[n] = self.anchor[n].to(p.device)
            terms.append((f * (p - self.anchor[n]).pow(2)).sum())
        if not terms:
            return torch.zeros((), device=_device(model))
        return self.lam / 2 * torch.stack(terms).sum()

    def __repr__(self) -> str:
        return f"EWC(lam={self.lam:g}, {len(self.fisher)} tensors)"


def diagonal_fisher(model: nn.Module, data: Any, samples: int = 256, batch_size: int = 32,
                    names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The empirical Fisher's diagonal: mean over examples of the squared gradient of -log p(y | x).

    One backward pass per example (per-example gradients, as Kirkpatrick et al.), on the
    first ``samples`` examples of ``data`` in a fixed shuffled order, with the model in
    eval mode. ``names`` limits it to some parameters (default: all). The model is unchanged.

    Example:
        >>> fisher = diagonal_fisher(model, source.train, samples=200)  # doctest: +SKIP
    """
    params = {n: p for n, p in model.named_parameters() if names is None or n in names}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    flags = {n: p.requires_grad for n, p in params.items()}
    modes, device = module_modes(model), _device(model)
    task = resolve_task(model, data)
    loader = make_loader(data, batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen = 0
    model.eval()
    try:
        for p in params.values():
            p.requires_grad_(True)
        for batch in loader:
            batch = to_device(batch, device)
            for i in range(_batch_len(batch)):
                outputs, targets = forward_batch(model, _example(batch, i))
                loss = compute_loss(task, outputs, targets)  # -log p(y | x) for classification
                grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                for n, g in zip(params, grads):
                    if g is not None:
                        fisher[n] += g.detach() ** 2
                seen += 1
                if seen >= samples:
                    break
            if seen >= samples:
                break
    finally:
        for n, p in params.items():
            p.requires_grad_(flags[n])
        restore_modes(modes)
    return {n: f / max(seen, 1) for n, f in fisher.items()}


# --- rehearsal -----------------------------------------------------------------------------------


class Rehearsal:
    """Keep learning the source task while fine-tuning: the source loss on a batch of source examples.

    Every training step, ``penalty(model)`` runs a batch of ``source_data`` through the
    model's (shared, training) backbone, catches the input of the current head with a
    forward pre-hook (as the feature cache does), applies the kept ``source_head`` to it,
    and returns ``weight * cross-entropy``. fit adds it to the loss and logs it on its own.
    The source head is a frozen copy. Source batches cycle through ``source_data`` in a
    shuffled order fixed by ``seed``.

    Example:
        >>> rehearse = ft.Rehearsal(source.train, copy.deepcopy(model.fc), weight=1.0)  # doctest: +SKIP
        >>> ft.replace_head(model, 10)  # doctest: +SKIP
        >>> ft.fit(model, target.train, target.val, regularizers=[rehearse])  # doctest: +SKIP
    """

    needs_backbone = True  # it runs the backbone on source examples

    def __init__(self, source_data: Any, source_head: nn.Module, weight: float = 1.0, batch_size: int = 16,
                 seed: int = 0, name: str = "rehearsal"):
        if not weight >= 0:
            raise ValueError(f"Rehearsal weight must be >= 0; got {weight!r}.")
        self.weight, self.name = float(weight), name
        self.source_head = copy.deepcopy(source_head).requires_grad_(False)
        self.loader = make_loader(source_data, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
        self._batches = iter(())

    def _next_batch(self):
        try:
            return next(self._batches)
        except StopIteration:  # a new pass over the source data
            self._batches = iter(self.loader)
            return next(self._batches)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        batch = to_device(self._next_batch(), _device(model))
        seen = {}
        hook = model.get_submodule(head_name(model)).register_forward_pre_hook(
            lambda module, args: seen.__setitem__("features", args[0]))
        try:
            _, targets = forward_batch(model, batch)
        finally:
            hook.remove()
        features = seen["features"]
        self.source_head.to(features.device)
        return self.weight * F.cross_entropy(self.source_head(features).float(), targets)

    def __repr__(self) -> str:
        return f"Rehearsal(weight={self.weight:g}, batch_size={self.loader.batch_size})"


# --- measuring overfitting -----------------------------------------------------------------------


# --- helpers ---------------------------------------------------------------------------------


def _head_prefix(model: nn.Module) -> tuple[str, ...]:
    """``('<head module>.', ...)`` for ``str.startswith`` tests of parameter names; () when there is no head."""
    try:
        return tuple(name + "." for name in head_modules(model))
    except ValueError:
        return ()


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _batch_len(batch) -> int:
    if isinstance(batch, dict):
        return len(next(iter(batch.values())))
    return len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)


def _example(batch, i: int):
    """Example ``i`` of a batch, as a batch of one."""
    if isinstance(batch, dict):
        return {k: v[i:i + 1] for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(v[i:i + 1] for v in batch)
    return batch[i:i + 1]
