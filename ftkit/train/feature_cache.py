"""The feature cache: with a frozen backbone, compute its features once and train only the head.

Training only a new head on a frozen backbone repeats the same expensive computation
every epoch: the backbone maps each example to the same feature vector. Caching those
vectors (the head's inputs, caught by a forward pre-hook) turns every epoch after the
first pass into a tiny linear-model fit: the "feature extraction" of the PyTorch
transfer-learning tutorial, made automatic.

It is only valid when the backbone really is a fixed function of the example:

- no backbone parameter trains (and gradual unfreezing is off);
- no random data augmentation (the dataset says ``.augment == "none"``, or has no
  ``.transform`` that could be random);
- no BatchNorm in the backbone updates its statistics (``bn="train"``);
- no regularizer needs the backbone's forward pass (one that does not can say so with
  ``needs_backbone = False``);
- the head is called once per forward and its output is the model's output.

Features also outlive a call: they are kept in memory (up to ``MAX_BYTES``, least recently
used dropped first), keyed by a hash of the frozen backbone (its weights, buffers and
modules) and of the data (``LabeledDataset.fingerprint()``: inputs, targets, preparation).
A second linear probe on the same backbone and data (another seed, another learning rate,
the next run of a lesson) then never runs the backbone. ``history.info["features"]`` says
whether each split's features were computed or reused; ``clear_feature_cache()`` empties it.

The cache corresponds to the backbone in eval mode, which is also how ``fit`` runs a
frozen backbone (``train_mode``). A parameter-free dropout outside the frozen parts stays
active on the full path: one that feeds the head directly (Hugging Face's classifier
dropout, EfficientNet's) is applied to the cached features with the model's own module,
which draws the same masks; any other refuses the cache.

Example:
    >>> ft.freeze(model)                              # head only  # doctest: +SKIP
    >>> history = ft.fit(model, data.train, data.val)  # doctest: +SKIP
    >>> history.info["path"], history.info["path_reason"]  # doctest: +SKIP
    ('feature-cache', 'only the head trains: backbone features computed once')
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from ..core import distributed
from ..core.batches import data_attr, forward_batch, make_loader, module_modes, restore_modes
from ..core.device import amp_dtype, autocast, to_device
from ..models.groups import head_modules, head_name
from ..tuning.freeze import bn_mode, train_mode

_MISSING = object()
MAX_BYTES = 256 * 2**20  # features kept across calls, at most (a few MB per probe is typical)
_STORE: OrderedDict[tuple, TensorDataset] = OrderedDict()


def clear_feature_cache() -> None:
    """Forget the backbone features kept from earlier ``fit`` calls (they are recomputed when needed)."""
    _STORE.clear()


def backbone_fingerprint(model: nn.Module, head: str) -> str:
    """A hash of everything below the head that shapes its input: modules, weights, buffers."""
    return weights_fingerprint(model, skip=head)


def weights_fingerprint(model: nn.Module, skip: str | None = None) -> str:
    """A hash of a model's modules, weights and buffers (leaving out the submodule ``skip`` and what is inside it).

    Two models with the same fingerprint compute the same function: ``compare`` keys its
    result cache by it, so retrained weights never return stale rows.
    """
    h = hashlib.blake2b(digest_size=16)
    inside = f"{skip}." if skip else "\0"
    for name, module in model.named_modules():
        if (skip is None or name != skip) and not name.startswith(inside):
            h.update(f"{name}:{type(module).__qualname__}({module.extra_repr()})|".encode())
    for name, tensor in model.state_dict(keep_vars=True).items():
        if name.startswith(inside):
            continue
        t = tensor.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()


def _data_fingerprint(data: Any) -> str | None:
    fingerprint = getattr(data, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else None


def _remember(key: tuple, features: TensorDataset) -> None:
    _STORE[key] = features
    _STORE.move_to_end(key)
    size = lambda f: sum(t.numel() * t.element_size() for t in f.tensors)
    while _STORE and sum(size(f) for f in _STORE.values()) > MAX_BYTES:
        _STORE.popitem(last=False)


def _features(model: nn.Module, head: str, data: Any, backbone: str, eval_size: int, device: torch.device,
              dtype: torch.dtype | None, num_workers: int) -> tuple[TensorDataset | str, str]:
    """The cached features of ``data`` (kept from an earlier call, or computed now), and which."""
    fingerprint = _data_fingerprint(data)
    key = (backbone, head, fingerprint, str(device), str(dtype))
    if fingerprint is not None and key in _STORE:
        _STORE.move_to_end(key)
        return _STORE[key], "reused"
    features = cache_features(model, head, data, eval_size, device, dtype, num_workers)
    if fingerprint is not None and not isinstance(features, str):
        _remember(key, features)
    return features, "computed"


def augmentation(data: Any) -> str | None:
    """Why the data may be random from epoch to epoch (None: it is not)."""
    augment = data_attr(data, "augment", _MISSING)
    if augment is not _MISSING:
        return None if augment in (None, False, "none") else f"data augmentation {augment!r} is on"
    for name in ("transform", "transforms"):
        if data_attr(data, name) is not None:
            return (f"the dataset has a .{name}, which may be random; a dataset that sets .augment = 'none' "
                    "allows the cache")
    return None


def cache_decision(model: nn.Module, train: Any, cfg, task: str, regularizers=()) -> tuple[str | None, str]:
    """(the head's name, why) when the cache is valid, else (None, why not)."""
    if distributed.world().distributed:  # the features would be computed per process, each on its share
        return None, "several processes train (DDP)"
    if not cfg.feature_cache:
        return None, "feature_cache=False"
    if task == "causal-lm":
        return None, "a language model's head runs at every position"
    if cfg.unfreeze_every:
        return None, "gradual unfreezing trains the backbone in later epochs"
    if isinstance(train, DataLoader):
        return None, "train is a DataLoader (pass the Dataset to allow the cache)"
    try:
        head = head_name(model)
    except ValueError as err:
        return None, f"no head found ({err})"
    inside = head + "."
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith(inside)]
    if trainable:
        new_layers = tuple(name + "." for name in head_modules(model) if name != head)
        if all(n.startswith(new_layers) for n in trainable):
            return None, (f"the head has layers before its output layer ({trainable[0].rsplit('.', 1)[0]}), "
                          "so the output layer's input changes as they train")
        return None, f"backbone parameters train ({trainable[0]}{' ...' if len(trainable) > 1 else ''})"
    if any(bn_mode(m) == "train" for m in model.modules()):
        return None, "a frozen BatchNorm updates its statistics (bn='train')"
    why = augmentation(train)
    if why:
        return None, why
    if any(getattr(r, "needs_backbone", True) for r in regularizers):
        return None, "a regularizer may need the backbone (give it needs_backbone = False if it does not)"
    return head, "only the head trains: backbone features computed once"


@torch.no_grad()
def cache_features(model: nn.Module, head: str, data: Any, batch_size: int, device: torch.device,
                   dtype: torch.dtype | None = None, num_workers: int = 0) -> TensorDataset | str:
    """The head's inputs and the targets for every example, in order; or why they cannot be cached."""
    module = model.get_submodule(head)
    seen: dict = {}

    def before(_module, args, kwargs):
        seen["calls"] = seen.get("calls", 0) + 1
        seen["x"] = args[0] if len(args) == 1 and not kwargs and torch.is_tensor(args[0]) else None

    def after(_module, _args, output):
        seen["out"] = output

    hooks = [module.register_forward_pre_hook(before, with_kwargs=True), module.register_forward_hook(after)]
    modes = module_modes(model)
    model.eval()
    features, targets = [], []
    try:
        for batch in make_loader(data, batch_size, device=device, num_workers=num_workers):
            seen.clear()
            with autocast(device, dtype):
                outputs, y = forward_batch(model, to_device(batch, device))
            if seen.get("calls") != 1 or seen["x"] is None:
                return f"the head {head!r} is not called exactly once with one tensor"
            if y is None:
                return "the batches have no targets"
            if not (seen["out"] is outputs or torch.equal(seen["out"], outputs)):
                return f"the head {head!r}'s output is not the model's output (something runs after it)"
            features.append(seen["x"].detach())
            targets.append(y)
    finally:
        for hook in hooks:
            hook.remove()
        restore_modes(modes)
    return TensorDataset(torch.cat(features), torch.cat(targets))


def feature_loader(features: TensorDataset, batch_size: int, shuffle: bool,
                   generator: torch.Generator | None = None) -> DataLoader:
    """Batches of cached features, shuffled exactly as ``DataLoader(data, shuffle=True, generator=g)`` would.

    Each batch is one slice of the cached tensors (no per-example Python).
    """
    sampler = RandomSampler(features, generator=generator) if shuffle else SequentialSampler(features)
    return DataLoader(features, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False),
                      generator=generator if shuffle else torch.Generator())


@dataclass
class TrainingPath:
    """Which way ``fit`` trains, and why: the full model, or its head on cached features.

    ``net`` is None on the full path; on the cache path it is what the loop calls on the
    cached features (the head, behind the model's own dropout when one sits right before
    it), trained on ``train_loader`` and validated on ``val_loader`` when the validation
    split could be cached too (else the full model validates).
    """

    info: dict  # path, path_reason, and on the cache path cached_features and features (computed / reused)
    net: nn.Module | None = None
    train_loader: DataLoader | None = None
    val_loader: DataLoader | None = None


def choose_path(model: nn.Module, train: Any, val: Any, cfg, task: str, device: torch.device,
                generator: torch.Generator | None, regularizers=()) -> TrainingPath:
    """The feature-cache path when it is valid (computing or reusing the features), else the full path."""
    head, reason = cache_decision(model, train, cfg, task, regularizers)
    if head is None:
        return TrainingPath(info={"path": "full", "path_reason": reason})
    eval_size = cfg.eval_batch_size or 2 * cfg.batch_size
    dtype = amp_dtype(device, cfg.amp)
    backbone = backbone_fingerprint(model, head)
    cached, how = _features(model, head, train, backbone, eval_size, device, dtype, cfg.num_workers)
    if isinstance(cached, str):
        return TrainingPath(info={"path": "full", "path_reason": cached})
    dropout = _dropout_before(model, head, train, device, dtype)
    if isinstance(dropout, str):
        return TrainingPath(info={"path": "full", "path_reason": dropout})
    info = {"path": "feature-cache", "path_reason": reason, "cached_features": list(cached.tensors[0].shape),
            "features": {"train": how}}
    net = model.get_submodule(head)
    if dropout is not None:  # the model's own dropout, applied to the features as the full path applies it
        net = DropoutThen(dropout, net)
        info.update(path_reason=f"{reason}; the dropout before the head (p={dropout.p}) is applied to them",
                    feature_dropout=dropout.p)
    path = TrainingPath(info=info, net=net,
                        train_loader=feature_loader(cached, cfg.batch_size, shuffle=True, generator=generator))
    if val is not None and not isinstance(val, DataLoader) and augmentation(val) is None:
        cached_val, how = _features(model, head, val, backbone, eval_size, device, dtype, cfg.num_workers)
        if not isinstance(cached_val, str):
            path.val_loader = feature_loader(cached_val, eval_size, shuffle=False)
            path.info["features"]["val"] = how
    return path


_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class DropoutThen(nn.Module):
    """A dropout layer, then ``head``: the cache path's stand-in for a model whose dropout sits right before its head.

    The dropout is the model's own module, so it draws its masks as it would on the full path.
    """

    def __init__(self, dropout: nn.Module, head: nn.Module):
        super().__init__()
        self.dropout, self.head = dropout, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(x))


@torch.no_grad()
def _dropout_before(model: nn.Module, head: str, data: Any, device: torch.device,
                    dtype: torch.dtype | None) -> nn.Module | str | None:
    """The dropout layer that feeds the head while ``fit`` trains (None: no dropout is active), or why the cache is refused.

    Under ``train_mode`` a parameter-free dropout outside the frozen parts stays active, so
    the full path drops features that the cache (computed in eval mode) would keep. One that
    feeds the head directly is applied to the cached features; any other makes the cache invalid.
    """
    modes = module_modes(model)
    train_mode(model)
    inside = head + "."
    active = {name: m for name, m in model.named_modules()
              if isinstance(m, _DROPOUTS) and m.training and m.p > 0 and not name.startswith(inside)}
    restore_modes(modes)
    if not active:
        return None
    outputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: outputs.__setitem__(name, out))
             for name, m in active.items()]
    hooks.append(model.get_submodule(head).register_forward_pre_hook(
        lambda mod, args: outputs.__setitem__("<head>", args[0] if args else None)))
    modes = module_modes(model)
    model.eval()
    try:
        batch = next(iter(make_loader(data, 2, device=device)))
        with autocast(device, dtype):
            forward_batch(model, to_device(batch, device))
    finally:
        for hook in hooks:
            hook.remove()
        restore_modes(modes)
    x = outputs.get("<head>")
    feeding = [name for name in active if x is not None and outputs.get(name) is x]
    if len(active) == 1 and feeding:
        return active[feeding[0]]
    others = [name for name in active if name not in feeding]
    return (f"a dropout outside the head stays active while the model trains ({others[0]}); features "
            "cached in eval mode would skip it")

