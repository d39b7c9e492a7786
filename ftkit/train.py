"""``fit``: the training loop, and ``TrainConfig``, everything it can be told.

``fit`` is a plain ``for epoch / for batch`` loop (read it below): forward under
autocast, loss, backward, and every ``accumulate`` micro-batches one optimizer step
with gradient clipping and a scheduler step. Around it sit a few plain functions:
set-up (device, optimizer, schedule, resume, feature cache), the end of an epoch
(validation, early stopping, checkpoints) and the callbacks.

Frozen parts run in eval mode. Every submodule whose parameters are all frozen is put
in eval mode during training (``train_mode``): a frozen backbone is a fixed feature
extractor, so its dropout is off and its BatchNorm statistics stay put (a BatchNorm
that ``ft.freeze(..., bn="train")`` marked keeps updating its statistics). Modules
without parameters, such as a dropout just before the head, keep training behaviour.

The feature cache. When only the head trains, the backbone computes the same
features for an example in every epoch, so ``fit`` computes them once (a forward
pre-hook on the head, model in eval mode) and trains the head alone on them. It gives
the same head weights as the full path (within float rounding) when no
parameter-free dropout sits between the frozen backbone and the head, and it is never
used when a backbone parameter trains, data augmentation may be on, a BatchNorm
updates statistics, or a regularizer needs the backbone. ``history.info["path"]``
says which path ran and ``info["path_reason"]`` why.

Example:
    >>> history = ft.fit(model, data.train, data.val, epochs=3, lr=slice(1e-5, 1e-3))
    >>> history.to_table()
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ._util import release_memory, suggest
from .checkpoint import restore_state, resume_run, save_run, snapshot_state
from .device import (amp_dtype, autocast, grad_scaler, peak_memory_mb, pick_device, prepare_model,
                     reset_peak_memory, seed_everything, set_rng_state, to_device, use_all_cores)
from .evaluate import collect, compute_loss, count_items, forward_batch, make_loader, metrics_from, resolve_task
from .feature_cache import choose_path
from .freeze import bn_mode, freeze_to
from .groups import layer_groups
from .history import History, check_monitor, improved, monitor_mode
from .optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_scheduler, warmup_steps


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``fit`` can be told. ``ft.fit(model, train, val, epochs=3, lr=1e-4)`` overrides fields."""

    epochs: int = 3  # passes over the training data
    lr: float | slice = 1e-3  # peak learning rate; slice(lo, hi): discriminative LRs (ULMFiT), first group lo, head hi
    lr_mult: tuple[float, ...] | None = None  # one LR multiplier per layer group (input -> output), instead of a slice
    batch_size: int = 32  # examples per forward pass
    accumulate: int = 1  # micro-batches per optimizer step: the effective batch is batch_size * accumulate
    optimizer: str = "adamw"  # "adamw" (Loshchilov & Hutter 2019), "adam", "sgd" (with momentum), "rmsprop"
    weight_decay: float = 0.01  # on weight matrices only, never on biases or normalisation parameters
    momentum: float = 0.9  # SGD's momentum
    schedule: str = "onecycle"  # "constant", "step", "cosine" (linear warmup), "onecycle" (Smith 2018; fastai)
    warmup: int | float | None = None  # steps (int) or fraction of all steps (float < 1); None: the schedule's default
    step_size: int = 0  # "step" schedule: epochs between LR drops; 0: drop at 1/2 and 3/4 of training
    gamma: float = 0.1  # "step" schedule: the factor of each drop
    clip: float | None = None  # clip the gradients' global norm to this (Pascanu et al. 2013); None: no clipping
    unfreeze_every: int | None = None  # gradual unfreezing (ULMFiT): head only first, one more group every k epochs
    patience: int | None = None  # early stopping after this many epochs without improvement; None: never stop early
    min_delta: float = 0.0  # the smallest change in the monitored value that counts as an improvement
    monitor: str = "val_loss"  # what "best" means: val_loss, val_accuracy, val_f1, val_mae, ... (train_loss w/o val)
    restore_best: bool = True  # with early stopping, end with the best epoch's weights
    task: str | None = None  # None: the model card's task, else the dataset's .task, else classification
    device: str | None = None  # None: CUDA if present, else MPS, else CPU
    amp: bool = True  # mixed precision on CUDA (bf16, or fp16 with a GradScaler); the CPU always trains in fp32
    seed: int | None = 0  # seeds Python, NumPy, torch and the shuffling (CPU runs are bit-identical); None: don't
    num_workers: int = 0  # DataLoader worker processes (0: load in the main process)
    eval_batch_size: int | None = None  # batch size for validation and the feature cache; None: 2 * batch_size
    feature_cache: bool = True  # with only the head training, compute the backbone's features once
    progress: bool = True  # tqdm progress bars (also off when the environment sets TQDM_DISABLE=1)

    def __post_init__(self):
        if self.lr_mult is not None:
            object.__setattr__(self, "lr_mult", tuple(float(m) for m in self.lr_mult))
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs must be a whole number >= 1"),
            (self.batch_size >= 1 and self.accumulate >= 1, "batch_size and accumulate must be >= 1"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (isinstance(self.lr, slice) or self.lr > 0, "lr must be > 0, or slice(lo, hi) for discriminative LRs"),
            (self.lr_mult is None or min(self.lr_mult) > 0, "lr_mult values must be > 0"),
            (self.clip is None or self.clip > 0, "clip is a maximum gradient norm > 0, or None"),
            (self.unfreeze_every is None or self.unfreeze_every >= 1, "unfreeze_every is a number of epochs >= 1"),
            (self.patience is None or self.patience >= 0, "patience is a number of epochs >= 0, or None"),
            (self.monitor.startswith(("val_", "train_")), "monitor names an epoch metric, e.g. 'val_loss'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {message}; got {_fields_text(self)}.")
        warmup_steps(self.warmup, 100, self.schedule)  # raises a clear error for a bad warmup

    def to_dict(self) -> dict:
        """Plain data for JSON (a slice becomes {"slice": [lo, hi]})."""
        out = dataclasses.asdict(self)
        if isinstance(self.lr, slice):
            out["lr"] = {"slice": [self.lr.start, self.lr.stop]}
        if self.lr_mult is not None:
            out["lr_mult"] = list(self.lr_mult)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        if isinstance(data.get("lr"), dict):
            data["lr"] = slice(*data["lr"]["slice"])
        return cls(**data)


def make_config(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    """``config`` (or the defaults) with ``overrides`` replacing fields; unknown names are an error."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [k for k in overrides if k not in names]
    if unknown:
        hint = suggest(unknown[0], names)
        raise TypeError(f"Unknown training setting(s) {unknown}.{hint} TrainConfig's fields are: {', '.join(names)}.")
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a ft.TrainConfig, got {type(config).__name__}.")
    return dataclasses.replace(config or TrainConfig(), **overrides)


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, then eval mode for every submodule whose parameters are all frozen."""
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


def fit(model: nn.Module, train: Any, val: Any = None, config: TrainConfig | None = None, *,
        callbacks: Sequence[Callable] = (), regularizers: Sequence[Any] = (),
        checkpoint_dir: str | os.PathLike | None = None, resume: bool = True, live: bool | None = None,
        **overrides) -> History:
    """Train ``model`` on ``train``, validating on ``val`` after every epoch; return the History.

    Args:
        model: any ``nn.Module`` (a catalogue model, a Hugging Face model, your own).
            It is trained in place and left on the training device.
        train, val: Datasets of ``(x, y)`` or of dicts with ``labels`` (a DataLoader works too).
        config: a ``TrainConfig``; keyword ``overrides`` replace its fields (``epochs=3``).
        callbacks: functions ``f(epoch, history, model)`` called after each epoch, or objects
            with any of ``on_step(history, model)`` (after each optimizer step),
            ``on_epoch_end(epoch, history, model)`` and ``on_fit_end(history, model)``
            (``ft.LiveView()`` is one). Raising KeyboardInterrupt in one stops cleanly.
        regularizers: functions (or objects with ``.penalty``) ``penalty(model) -> tensor``
            added to the loss; logged separately from it.
        checkpoint_dir: save ``last.safetensors`` every epoch and ``best.safetensors``;
            with ``resume=True`` a run that finds ``last.safetensors`` continues from it exactly.
        live: show live curves (``ft.LiveView``) as it trains; ``None``: in a notebook, when
            progress is on and no LiveView is among the callbacks already.

    Ctrl-C (KeyboardInterrupt) stops cleanly: the model keeps the last completed epoch
    (the best one with early stopping) and the History says ``interrupted``. Frozen
    submodules run in eval mode during training (see the module notes); at the end the
    model is left in eval mode, ready for ``ft.evaluate`` and ``ft.predict``.

    Example:
        >>> history = ft.fit(model, data.train, data.val, epochs=3, lr=1e-4)
        >>> ft.fit(model, data.train, data.val, lr=slice(1e-5, 1e-3), unfreeze_every=1)
    """
    cfg = make_config(config, overrides)
    callbacks = _with_live_view(callbacks, cfg, live)
    on_step, on_epoch_end, on_fit_end = (_hooks(callbacks, name) for name in _HOOKS)
    history = History(info={"interrupted": False})
    run, snapshot, recorded = None, None, 0
    try:
        run = _setup(model, train, val, cfg, history, regularizers, checkpoint_dir, resume)
        dev, optimizer, scheduler, scaler = run.device, run.optimizer, run.scheduler, run.scaler
        for epoch in range(run.start_epoch, cfg.epochs):
            _unfreeze_for_epoch(model, cfg, epoch)  # gradual unfreezing (ULMFiT)
            train_mode(run.net)
            snapshot, recorded = snapshot_state(model), len(history.epochs)  # what an interrupt rolls back to
            reset_peak_memory(dev)
            start, sums, n = time.perf_counter(), _Sums(), len(run.train_loader)
            for i, batch in enumerate(_bar(run.train_loader, cfg, f"epoch {epoch + 1}/{cfg.epochs}")):
                batch = to_device(batch, dev)
                micro = min(cfg.accumulate, n - (i // cfg.accumulate) * cfg.accumulate)  # in this step
                with run.ctx:  # autocast to bf16/fp16 on CUDA; nothing on the CPU
                    outputs, targets = forward_batch(run.net, batch)
                    loss = compute_loss(run.task, outputs, targets)
                    penalty = _penalty(model, regularizers, sums)
                # Dividing by the micro-batch count makes accumulated gradients the mean over the big batch.
                total = (loss + penalty) / micro
                (scaler.scale(total) if scaler else total).backward()
                sums.add(run.task, loss, outputs, targets, micro)
                if (i + 1) % cfg.accumulate == 0 or i + 1 == n:
                    if scaler:
                        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    if cfg.clip:
                        torch.nn.utils.clip_grad_norm_(run.params, cfg.clip)
                    if scaler:
                        scaler.step(optimizer)  # skips the step if fp16 gradients overflowed
                        scaler.update()
                    else:
                        optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    history.steps.append({"step": len(history.steps) + 1, "epoch": epoch + 1,
                                          "loss": sums.step_loss(), "lr": optimizer.param_groups[-1]["lr"],
                                          **sums.step_penalty()})
                    scheduler.step()
                    for hook in on_step:
                        hook(history, model)
            _end_epoch(run, epoch, sums, time.perf_counter() - start)
            for hook in on_epoch_end:
                hook(epoch, history, model)
            if run.stop:
                history.info["stopped_early"] = True
                break
    except KeyboardInterrupt:
        history.info["interrupted"] = True
        if snapshot is not None and len(history.epochs) == recorded:  # the epoch was not completed
            restore_state(model, snapshot)
    if run is not None:
        _finish(run)
    for hook in on_fit_end:
        hook(history, model)
    run = None  # drops the optimizer, its state and the loaders
    release_memory()  # ...and gives their memory back to the system
    return history


_HOOKS = ("on_step", "on_epoch_end", "on_fit_end")


def _with_live_view(callbacks: Sequence[Any], cfg: TrainConfig, live: bool | None) -> list:
    from .live import LiveView, in_notebook

    if any(isinstance(c, LiveView) for c in callbacks):
        return list(callbacks)
    if live is None:
        live = cfg.progress and not _tqdm_disabled() and in_notebook()
    return [*callbacks, LiveView()] if live else list(callbacks)


def _hooks(callbacks: Sequence[Any], name: str) -> list[Callable]:
    """Each callback's ``name`` method, in order; a plain function is an ``on_epoch_end``."""
    plain = lambda c: not any(hasattr(c, h) for h in _HOOKS)
    return [c if plain(c) else getattr(c, name) for c in callbacks
            if hasattr(c, name) or (plain(c) and name == "on_epoch_end")]


class _Sums:
    """Running sums for the current optimizer step and epoch (kept as tensors: no GPU sync per batch)."""

    def __init__(self):
        self.loss = self.correct = self.step = 0.0
        self.items = self.examples = 0
        self.penalties: dict[str, Any] = {}
        self.step_penalties: dict[str, Any] = {}

    def add(self, task, loss, outputs, targets, micro):
        items = count_items(task, targets)
        self.loss = self.loss + loss.detach().float() * items
        self.items += items
        self.examples += len(targets)
        self.step = self.step + loss.detach().float() / micro
        if task == "classification":
            self.correct = self.correct + (outputs.detach().argmax(-1) == targets).sum()

    def step_loss(self) -> float:
        value, self.step = float(self.step), 0.0
        return value

    def step_penalty(self) -> dict:
        if not self.step_penalties:
            return {}
        values = {k: float(v) for k, v in self.step_penalties.items()}
        for k, v in values.items():
            self.penalties.setdefault(k, []).append(v)
        self.step_penalties = {}
        return {"penalty": sum(values.values())}


def _penalty(model: nn.Module, regularizers, sums: _Sums):
    total = 0.0
    for r in regularizers:
        value = getattr(r, "penalty", r)(model)
        name = getattr(r, "name", None) or getattr(r, "__name__", None) or type(r).__name__
        sums.step_penalties[name] = value.detach() if torch.is_tensor(value) else value  # last micro-batch's
        total = total + value
    return total


@dataclass
class _Run:
    """The objects one fit call trains with (made by ``_setup``)."""

    model: nn.Module
    net: nn.Module  # what the loop calls: the model, or only its head on the feature-cache path
    cfg: TrainConfig
    history: History
    device: torch.device
    task: str
    ctx: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    params: list
    train_loader: Any
    val_loader: Any
    val_net: nn.Module
    generator: torch.Generator | None
    checkpoint_dir: Path | None
    start_epoch: int = 0
    best: float | None = None
    bad_epochs: int = 0
    best_state: dict | None = None
    stop: bool = False


def _setup(model, train, val, cfg, history, regularizers, checkpoint_dir, resume) -> _Run:
    device = pick_device(cfg.device)
    use_all_cores(device)
    task = resolve_task(model, train, cfg.task)
    check_monitor(cfg.monitor, task, val is not None, cfg.patience)
    prepare_model(model, device)
    generator = seed_everything(cfg.seed)
    if cfg.unfreeze_every:
        freeze_to(model, -1)  # ULMFiT: the new head first; _unfreeze_for_epoch adds groups
    train_loader = make_loader(train, cfg.batch_size, shuffle=True, generator=generator, device=device,
                               num_workers=cfg.num_workers)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.accumulate)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.lr_mult, cfg.momentum)
    scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs * steps_per_epoch, cfg.warmup, steps_per_epoch,
                               cfg.step_size, cfg.gamma)
    dtype = amp_dtype(device, cfg.amp)
    val_loader = None if val is None else make_loader(val, cfg.eval_batch_size or 2 * cfg.batch_size,
                                                      device=device, num_workers=cfg.num_workers)
    run = _Run(model=model, net=model, cfg=cfg, history=history, device=device, task=task,
               ctx=autocast(device, dtype), optimizer=optimizer, scheduler=scheduler,
               scaler=grad_scaler(device, dtype), params=[p for p in model.parameters()],
               train_loader=train_loader, val_loader=val_loader, val_net=model, generator=generator,
               checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None)
    monitor = cfg.monitor if val is not None else "train_loss"
    history.info.update(device=str(device), task=task, amp=str(dtype).replace("torch.", "") if dtype else "fp32",
                        config=cfg.to_dict(), monitor=monitor, mode=monitor_mode(monitor), min_delta=cfg.min_delta,
                        steps_per_epoch=steps_per_epoch, stopped_early=False,
                        layer_lrs={g["group"]: g["initial_lr"] for g in optimizer.param_groups})
    rng = resume_run(run) if resume and run.checkpoint_dir is not None else None  # weights, optimizer, history
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("Every parameter of the model is frozen, so fit has nothing to train. "
                         "Unfreeze some (ft.unfreeze(model) or ft.freeze(model) to train the head only).")
    choose_path(run, train, val, regularizers)  # feature cache or full
    if rng is not None:
        set_rng_state(rng, generator)  # last, so the resumed run draws the same numbers as an unbroken one
    return run


def _unfreeze_for_epoch(model: nn.Module, cfg: TrainConfig, epoch: int) -> None:
    """ULMFiT's gradual unfreezing: in epoch e, the top 1 + e // k layer groups train."""
    if cfg.unfreeze_every:
        n_groups = len(layer_groups(model))
        freeze_to(model, -min(n_groups, 1 + epoch // cfg.unfreeze_every))


def _end_epoch(run: _Run, epoch: int, sums: _Sums, train_time: float) -> None:
    cfg, history = run.cfg, run.history
    record = {"epoch": epoch + 1, "train_loss": float(sums.loss) / max(1, sums.items)}
    if run.task == "classification":
        record["train_accuracy"] = float(sums.correct) / max(1, sums.examples)
    if sums.penalties:
        record["penalty"] = sum(sum(v) / len(v) for v in sums.penalties.values())
        record["penalties"] = {k: sum(v) / len(v) for k, v in sums.penalties.items()}
    if run.val_loader is not None:
        results = collect(run.val_net, run.val_loader, run.task, run.device, amp_dtype(run.device, cfg.amp))
        record.update({f"val_{k}": v for k, v in metrics_from(run.task, results).items()})
    record.update(lr=history.steps[-1]["lr"] if history.steps else None, time_s=round(train_time, 3),
                  samples_per_s=round(sums.examples / max(train_time, 1e-9)),
                  peak_memory_mb=round(peak_memory_mb(run.device), 1),
                  trainable=sum(p.numel() for p in run.model.parameters() if p.requires_grad))
    history.epochs.append(record)
    monitor = history.info["monitor"]
    is_best = improved(record.get(monitor), run.best, history.info["mode"], cfg.min_delta)
    if is_best:
        run.best, run.bad_epochs = record[monitor], 0
        if cfg.patience is not None and cfg.restore_best:
            run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
    else:
        run.bad_epochs += 1
    run.stop = cfg.patience is not None and run.bad_epochs >= cfg.patience
    if run.checkpoint_dir is not None:
        save_run(run, epoch + 1, is_best)
    if cfg.progress and not _tqdm_disabled():
        from tqdm.auto import tqdm

        shown = {k: v for k, v in record.items() if isinstance(v, float) and ("loss" in k or "acc" in k)}
        tqdm.write(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))


def _finish(run: _Run) -> None:
    if run.best_state is not None:  # early stopping with restore_best: end on the best epoch
        run.model.load_state_dict(run.best_state)
        run.history.info["restored_epoch"] = run.history.best_epoch
    run.model.eval()


def _tqdm_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false", "no")


def _bar(loader, cfg: TrainConfig, desc: str):
    if not cfg.progress or _tqdm_disabled():
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, leave=False)


def _fields_text(cfg: TrainConfig) -> str:
    return ", ".join(f"{f.name}={getattr(cfg, f.name)!r}" for f in dataclasses.fields(cfg))
