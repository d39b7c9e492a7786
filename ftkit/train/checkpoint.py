"""Checkpoints: one safetensors file holding the tensors, with everything else as JSON in its header.

A checkpoint is a single ``.safetensors`` file. Its tensors are the model's weights and
buffers, the optimizer's state (Adam's moments, SGD's momentum) and any other tensor
state (random-generator states). Everything else, such as the config, the History,
the epoch, which parameters were frozen, BatchNorm modes and the optimizer's param-group
layout and hyperparameters, is JSON stored in the file's header metadata under
``"ftkit"`` (read it with ``checkpoint_info``). Nothing is pickled, so loading a
checkpoint never runs code from the file.

Writes are atomic: the file is written under a temporary name in the same folder,
flushed to disk (fsync), then renamed over the old one (``os.replace``), so a crash
or Ctrl-C mid-save leaves the previous checkpoint intact. Loads check everything
first (readable file, matching parameter names and shapes, matching optimizer layout)
and only then change the model, so a bad checkpoint leaves the model untouched.

Example:
    >>> ft.save_checkpoint(model, "run/epoch3.safetensors", optimizer, epoch=3)  # doctest: +SKIP
    >>> state = ft.load_checkpoint("run/epoch3.safetensors", model, optimizer)  # doctest: +SKIP
    >>> state["epoch"]  # doctest: +SKIP
    3
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..core.errors import CheckpointError
from ..core.io import atomic_write
from ..tuning.freeze import apply_bn_modes, bn_mode

FORMAT, VERSION = "ftkit.checkpoint", 1


def save_checkpoint(model: nn.Module, path: str | os.PathLike, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, scaler: Any = None, **state) -> Path:
    """Save model, optimizer, scheduler and GradScaler state plus any ``state`` (JSON or tensors), atomically.

    The object comes first and the file second, as in ``torch.save(obj, f)`` and safetensors'
    ``save_model(model, filename)``; the older order ``(path, model)`` still works, with a
    deprecation warning. ``state`` values may be numbers, strings, lists, tuples, dicts and
    tensors, nested. Also saved: ``requires_grad`` per parameter and BatchNorm modes (the
    freeze state).

    Example:
        >>> ft.save_checkpoint(model, "model.safetensors", epoch=3, note="head only")  # doctest: +SKIP
    """
    if isinstance(model, (str, os.PathLike)) and isinstance(path, nn.Module):
        warnings.warn("save_checkpoint(path, model) is the old order; write save_checkpoint(model, path), as "
                      "torch.save(obj, f) does. The old order will stop working in a later version.",
                      DeprecationWarning, stacklevel=2)
        model, path = path, model
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_checkpoint(model, path) saves an nn.Module; got {type(model).__name__} first.")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as {path / 'last.safetensors'}.")
    tensors: dict[str, torch.Tensor] = {}
    meta = {
        "format": FORMAT, "version": VERSION, "torch": torch.__version__,
        "model": _pack(model.state_dict(), "model", tensors),
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "bn_modes": {n: bn_mode(m) for n, m in model.named_modules() if bn_mode(m)},
        "optimizer": None if optimizer is None else {
            "class": type(optimizer).__name__, "layout": _layout(model, optimizer),
            "state": _pack(optimizer.state_dict(), "optimizer", tensors)},
        "scheduler": None if scheduler is None else {
            "class": type(scheduler).__name__, "state": _pack(scheduler.state_dict(), "scheduler", tensors)},
        "scaler": None if scaler is None else _pack(scaler.state_dict(), "scaler", tensors),
        "state": _pack(state, "state", tensors),
    }
    tensors, meta["aliases"] = _own_storage(tensors)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"ftkit": json.dumps(meta)}))
    return path


def checkpoint_info(path: str | os.PathLike) -> dict:
    """The JSON part of a checkpoint (tensors appear as ``{"__tensor__": name}``), without loading tensors."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return _meta(path, f.metadata())
    except CheckpointError:
        raise
    except Exception as err:
        raise _unreadable(path, err) from err


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, scaler: Any = None, *, strict: bool = True,
                    restore_freeze: bool = True) -> dict:
    """Load a checkpoint into ``model`` (and optimizer, scheduler, scaler); return the extra ``state``.

    Everything is checked before anything changes: on any error the model and optimizer
    are left as they were. ``restore_freeze`` also restores ``requires_grad`` flags and
    BatchNorm modes. ``strict=False`` allows missing or unexpected weight names (not shapes).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: unreadable or not an ftkit checkpoint, or it does not fit.

    Example:
        >>> state = ft.load_checkpoint("run/last.safetensors", model, optimizer)  # doctest: +SKIP
    """
    meta, tensors = _read(path)
    weights = _unpack(meta["model"], tensors)
    _check_weights(model, weights, strict, path)
    if optimizer is not None:
        _check_optimizer(model, optimizer, meta.get("optimizer"), path)
    if scheduler is not None:
        saved = meta.get("scheduler")
        if saved is None or saved["class"] != type(scheduler).__name__:
            raise CheckpointError(f"{path} holds {'no scheduler' if saved is None else 'a ' + saved['class']}, "
                                  f"but a {type(scheduler).__name__} was given to load into.")
    # Every check passed: now change things.
    model.load_state_dict(weights, strict=strict)
    if restore_freeze and meta.get("requires_grad"):
        for name, p in model.named_parameters():
            if name in meta["requires_grad"]:
                p.requires_grad_(meta["requires_grad"][name])
        for name, module in model.named_modules():
            if hasattr(module, "_ftkit_bn_mode"):
                del module._ftkit_bn_mode
            if name in meta.get("bn_modes", {}):
                module._ftkit_bn_mode = meta["bn_modes"][name]
        apply_bn_modes(model, None)
    if optimizer is not None:
        optimizer.load_state_dict(_unpack(meta["optimizer"]["state"], tensors))
    if scheduler is not None:
        scheduler.load_state_dict(_unpack(meta["scheduler"]["state"], tensors))
    if scaler is not None and meta.get("scaler") is not None:
        scaler.load_state_dict(_unpack(meta["scaler"], tensors))
    return _unpack(meta["state"], tensors)


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Only the model's state dict from a checkpoint, on the CPU, without applying it anywhere."""
    meta, tensors = _read(path)
    return _unpack(meta["model"], tensors)


# --- fit's checkpoints: last + best, and exact resume -------------------------------------


@dataclass
class Resumed:
    """What a run's ``last.safetensors`` says beyond the weights and optimizer (which ``load_run`` loaded)."""

    epoch: int  # epochs completed
    steps: list  # the History's step records so far
    epochs: list  # ... and its epoch records
    best: float | None  # early stopping: the best monitored value so far
    bad_epochs: int  # ... and the epochs since it improved
    stopped: bool  # early stopping had ended that run
    rng: dict  # the random state at the end of its last epoch
    best_weights: dict | None = None  # best.safetensors' weights (when asked for and present)


def save_run(folder: Path, epoch: int, model: nn.Module, optimizer, scheduler, scaler, *, config: dict,
             history: dict, rng: dict, early: dict, is_best: bool) -> None:
    """Save ``last.safetensors`` (and copy it to ``best.safetensors`` when this epoch is the best)."""
    last = save_checkpoint(model, folder / "last.safetensors", optimizer, scheduler, scaler, config=config,
                           history=history, epoch=epoch, rng=rng, early=early)
    if is_best:
        atomic_write(folder / "best.safetensors", lambda tmp: shutil.copyfile(last, tmp))


def check_writable(folder: Path) -> None:
    """Fail at once, not after the first epoch, when checkpoints cannot be written to ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:  # nameless where the system allows: nothing stays
            probe.write(b"ok")
    except OSError as err:
        raise CheckpointError(f"fit cannot write checkpoints to {folder} ({type(err).__name__}: {err}). Choose a "
                              "folder you can write to (checkpoint_dir=...), or leave checkpoint_dir out.") from err


def load_run(folder: Path, model: nn.Module, optimizer, scheduler, scaler, *, config: dict,
             with_best: bool = False) -> Resumed | None:
    """Load ``folder/last.safetensors`` into the model, optimizer, scheduler and scaler; None when there is none.

    Returns the rest of the run's state for ``fit`` to carry on from. Settings that differ
    from the saved run's (other than how it is watched or where it runs) are warned about:
    the run would not match an unbroken one.
    """
    path = folder / "last.safetensors"
    if not path.is_file():
        return None
    state = load_checkpoint(path, model, optimizer, scheduler, scaler)
    then = state["config"]
    ignored = {"epochs", "progress", "num_workers", "eval_batch_size", "device"}
    changed = [k for k in config if k not in ignored and config[k] != then.get(k)]
    if changed:
        warnings.warn(f"Resuming {path} with different settings for {changed}: the run will not match an "
                      "unbroken one. Use the same settings for an exact resume.", stacklevel=3)
    best = folder / "best.safetensors"
    return Resumed(epoch=state["epoch"], steps=state["history"]["steps"], epochs=state["history"]["epochs"],
                   best=state["early"]["best"], bad_epochs=state["early"]["bad_epochs"],
                   stopped=bool(state["early"].get("stopped")), rng=state["rng"],
                   best_weights=load_weights(best) if with_best and best.is_file() else None)


# --- in memory: what an interrupted epoch rolls back to ------------------------------------


@torch.no_grad()
def snapshot_state(model: nn.Module, into: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """CPU copies of what one epoch can change: trainable parameters and all buffers (BatchNorm statistics).

    ``into``: an earlier snapshot of the same model, overwritten in place where the shapes still
    match, so that taking one every epoch does not hold two copies of the weights at once.
    """
    tensors = [(n, p) for n, p in model.named_parameters() if p.requires_grad] + list(model.named_buffers())
    old = into if into is not None else {}
    state = {}
    for name, tensor in tensors:
        saved = old.pop(name, None)
        if saved is not None and saved.shape == tensor.shape and saved.dtype == tensor.dtype:
            state[name] = saved.copy_(tensor.detach())
        else:
            state[name] = tensor.detach().to("cpu", copy=True)
    return state


@torch.no_grad()
def restore_state(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Copy a ``snapshot_state`` back into the model, in place."""
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    for name, saved in snapshot.items():
        tensors[name].copy_(saved)


# --- helpers ------------------------------------------------------------------------------


def _pack(obj: Any, name: str, tensors: dict) -> Any:
    """Turn nested state into JSON-able data; tensors go to ``tensors`` under a path-like name."""
    if torch.is_tensor(obj):
        key = name
        while key in tensors:
            key += "'"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _pack(v, f"{name}/{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[_pack(k, name, tensors), _pack(v, f"{name}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, f"{name}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_pack(v, f"{name}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, slice):
        return {"__slice__": [obj.start, obj.stop, obj.step]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # NumPy scalars and arrays
        return obj.tolist()
    raise TypeError(f"Cannot save {type(obj).__name__} at {name!r} in a checkpoint: only tensors, numbers, strings, "
                    "None, lists, tuples and dicts can be saved (checkpoints never pickle objects).")


def _unpack(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (key, value), = obj.items()
        if key == "__tensor__":
            return tensors[value]
        if key == "__tuple__":
            return tuple(_unpack(v, tensors) for v in value)
        if key == "__items__":
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in value}
        if key == "__slice__":
            return slice(*value)
    return {k: _unpack(v, tensors) for k, v in obj.items()}


def _own_storage(tensors: dict) -> tuple[dict, dict]:
    """Contiguous CPU tensors that own their memory, as safetensors needs; tied weights become aliases."""
    out, aliases, seen = {}, {}, {}
    for name, t in tensors.items():
        t = t.detach()
        if t.numel() > 0:
            key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
            if key in seen:  # the same tensor under two names (tied weights): save once
                aliases[name] = seen[key]
                continue
            seen[key] = name
        if not t.is_contiguous() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone(memory_format=torch.contiguous_format)
        out[name] = t.cpu()
    return out, aliases


def _layout(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names.get(id(p), "?") for p in group["params"]] for group in optimizer.param_groups]


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        where = " (it is a folder; fit saves last.safetensors and best.safetensors in it)" if path.is_dir() else ""
        raise FileNotFoundError(f"No checkpoint file at {path}{where}.")
    return path


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    if _is_pickle(path):
        return CheckpointError(
            f"{path} is not a readable safetensors checkpoint: it is a pickle file (as torch.save writes). ftkit "
            "never unpickles a file, because unpickling can run any code it contains. If you trust the file, "
            "load its weights with torch.load(path, weights_only=True) and model.load_state_dict(...), then "
            "save them with ft.save_checkpoint(model, path).")
    return CheckpointError(f"{path} is not a readable safetensors checkpoint ({type(err).__name__}: {err}). "
                           "It may be truncated or corrupted: use another one (e.g. best.safetensors) or train again.")


def _is_pickle(path: Path) -> bool:
    """torch.save's zip archive (``PK``) or a raw pickle (protocol byte 0x80), judged from the first bytes only."""
    with open(path, "rb") as f:
        start = f.read(4)
    return start.startswith(b"PK\x03\x04") or start[:1] == b"\x80"


def _meta(path: Path, metadata: dict | None) -> dict:
    raw = (metadata or {}).get("ftkit")
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not an ftkit checkpoint (no 'ftkit' metadata). "
                              "For bare weights use safetensors.torch.load_file and model.load_state_dict.")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has format {meta.get('format')!r} version {meta.get('version')!r}; "
                              f"this ftkit reads {FORMAT!r} up to version {VERSION}. Upgrade ftkit.")
    return meta


def _read(path) -> tuple[dict, dict]:
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = _meta(path, f.metadata())
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as err:
        raise _unreadable(path, err) from err
    for alias, name in meta.get("aliases", {}).items():
        tensors[alias] = tensors[name]
    return meta, tensors


def _check_weights(model: nn.Module, weights: dict, strict: bool, path) -> None:
    own = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}"
             for k, v in weights.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} shape(s) differ, e.g. {wrong[:3]}")
    if strict and missing:
        problems.append(f"{len(missing)} weight(s) missing from the checkpoint, e.g. {missing[:3]}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} weight(s) the model does not have, e.g. {unexpected[:3]}")
    if problems:
        raise CheckpointError(f"{path} does not fit this {type(model).__name__}: " + "; ".join(problems) +
                              ". Was it saved from another architecture or head size? The model was not changed.")


def _check_optimizer(model, optimizer, saved, path) -> None:
    if saved is None:
        raise CheckpointError(f"{path} holds no optimizer state; load it without the optimizer.")
    if saved["class"] != type(optimizer).__name__:
        raise CheckpointError(f"{path} holds {saved['class']} state, but a {type(optimizer).__name__} was given. "
                              "Build the same optimizer (config.optimizer) to resume.")
    layout = _layout(model, optimizer)
    if layout != saved["layout"]:
        raise CheckpointError(f"{path}'s optimizer has {len(saved['layout'])} param groups with "
                              f"{[len(g) for g in saved['layout']]} parameters; this one has {len(layout)} with "
                              f"{[len(g) for g in layout]} (or other names). Build it the same way (same model, "
                              "same lr slice / lr_mult) to resume. The model was not changed.")
