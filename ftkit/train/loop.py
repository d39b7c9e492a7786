"""``fit``: the training loop, in one function that reads top to bottom.

``fit`` has three parts, in order, all visible in its body. Set-up: each step returns
what the loop uses (device, seeding, loaders, optimizer and schedule, mixed precision,
the state a resumed run carries on from, and which path trains: the full model or its
head on cached features). The loop: a plain ``for epoch / for batch`` loop, forward under
autocast, loss, backward, and every ``accumulate`` micro-batches one optimizer step with
gradient clipping and a scheduler step. The end of each epoch: validation, the epoch's
record, early stopping, checkpoints, callbacks. The batch rules (what a batch is, the
loss) are in ``ftkit.core.batches``, shared with ``evaluate`` and ``lr_find``.

Frozen parts run in eval mode. Every submodule whose parameters are all frozen is put
in eval mode during training (``train_mode``): a frozen backbone is a fixed feature
extractor, so its dropout is off and its BatchNorm statistics stay put (a BatchNorm
that ``ft.freeze(..., bn="train")`` marked keeps updating its statistics). Modules
without parameters, such as a dropout just before the head, keep training behaviour.

The feature cache. When only the head trains, the backbone computes the same
features for an example in every epoch, so ``fit`` computes them once (a forward
pre-hook on the head, model in eval mode) and trains the head alone on them, behind
the model's own dropout when one feeds the head. It gives the same head weights as the
full path (within float rounding), and it is never used when a backbone parameter
trains, data augmentation may be on, a BatchNorm updates statistics, another dropout is
active, or a regularizer needs the backbone. ``history.info["path"]``
says which path ran and ``info["path_reason"]`` why.

Example:
    >>> history = ft.fit(model, data.train, data.val, epochs=3, lr=slice(1e-5, 1e-3))  # doctest: +SKIP
    >>> history.to_table()  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..core import distributed
from ..core.batches import compute_loss, count_items, forward_batch, make_loader, resolve_task
from ..core.device import (
    amp_dtype,
    autocast,
    grad_scaler,
    peak_memory_mb,
    pick_device,
    prepare_model,
    release_device_memory,
    reset_peak_memory,
    rng_state,
    seed_everything,
    set_rng_state,
    to_device,
    use_all_cores,
)
from ..core.errors import ConfigError, DeviceMemoryError, NonFiniteLossError
from ..core.history import History, check_monitor, improved, monitor_mode
from ..core.util import release_memory
from ..models.groups import layer_groups
from ..tuning.freeze import apply_bn_modes, train_mode
from ..viz.live import LiveView, in_notebook
from .checkpoint import check_writable, load_run, restore_state, save_run, snapshot_state
from .checks import check_data
from .config import TrainConfig, make_config
from .evaluate import collect, metrics_from
from .feature_cache import choose_path
from .optim import make_optimizer, make_scheduler


def fit(model: nn.Module, train: Any, val: Any = None, config: TrainConfig | None = None, *,
        callbacks: Sequence[Callable] = (), regularizers: Sequence[Any] = (),
        checkpoint_dir: str | os.PathLike | None = None, resume: bool = True, live: bool | None = None,
        **overrides) -> History:
    """Train ``model`` on ``train``, validating on ``val`` after every epoch; return the History.

    Validation is read-only: ``val_every=k`` (validate every k-th epoch and after the last, for
    long runs on a slow machine) trains to the same weights as validating every epoch.

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

    Started by ``torchrun`` or ``accelerate launch`` (one process per GPU), ``fit`` trains with
    DistributedDataParallel, each process on its share of ``train`` (``ftkit.core.distributed``).

    Ctrl-C (KeyboardInterrupt) stops cleanly: the model keeps the last completed epoch
    (the best one with early stopping) and the History says ``interrupted``. Frozen
    submodules run in eval mode during training (see the module notes); at the end the
    model is left in eval mode, ready for ``ft.evaluate`` and ``ft.predict``.

    Example:
        >>> history = ft.fit(model, data.train, data.val, epochs=3, lr=1e-4)  # doctest: +SKIP
        >>> ft.fit(model, data.train, data.val, lr=slice(1e-5, 1e-3), unfreeze_every=1)  # doctest: +SKIP
    """
    cfg = make_config(config, overrides)
    callbacks = _with_live_view(callbacks, cfg, live, distributed.world().main)
    on_step, on_epoch_end, on_fit_end = (_hooks(callbacks, name) for name in _HOOKS)
    history = History(info={"interrupted": False})
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    ready, best, snapshot, recorded, user_flags = False, _Best(), None, 0, None
    try:
        # --- Set-up: each step returns what the loop uses. ---
        device = distributed.launched_device(pick_device(cfg.device), cfg.device)  # cuda:LOCAL_RANK under torchrun
        here = distributed.init_process_group(device)  # several processes: join the launcher's group (DDP)
        use_all_cores(device)
        task = resolve_task(model, train, cfg.task)
        check_data(model, train, task, "fit")  # a clear error now, not one from deep inside torch later
        if val is not None:
            check_data(model, val, task, "fit's validation")
        check_monitor(cfg.monitor, task, val is not None, cfg.patience)
        prepare_model(model, device)  # to the device; channels_last for CNNs on CUDA
        generator = seed_everything(cfg.seed)  # Python, NumPy, torch, and a generator for the shuffling
        can_train = {id(p) for p in model.parameters() if p.requires_grad}  # gradual unfreezing adds to none else
        if cfg.unfreeze_every:
            user_flags = [(p, p.requires_grad) for p in model.parameters()]  # given back when fit ends
            _unfreeze_for_epoch(model, cfg, 0, can_train)  # ULMFiT: the new head first; later epochs add groups
        sampler, val_share = _shares(train, val, cfg, here)  # several processes: each its share of the data
        train_loader = make_loader(train, cfg.batch_size, shuffle=True, generator=generator, device=device,
                                   num_workers=cfg.num_workers, sampler=sampler)
        eval_size = cfg.eval_batch_size or 2 * cfg.batch_size
        val_loader = None if val is None else make_loader(val_share, eval_size, device=device,
                                                          num_workers=cfg.num_workers)
        steps_per_epoch = math.ceil(len(train_loader) / cfg.accumulate)
        optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.lr_mult, cfg.momentum)
        optimizer.zero_grad(set_to_none=True)  # gradients left on the model would join the first step
        scheduler = make_scheduler(optimizer, cfg.schedule, cfg.epochs * steps_per_epoch, cfg.warmup,
                                   steps_per_epoch, cfg.step_size, cfg.gamma)
        dtype = amp_dtype(device, cfg.amp)  # bf16 or fp16 on CUDA, None (fp32) elsewhere
        ctx, scaler = autocast(device, dtype), grad_scaler(device, dtype)
        history.info.update(_run_info(cfg, device, task, dtype, val is not None, steps_per_epoch, optimizer))
        if here.distributed:
            history.info.update(processes=here.size, rank=here.rank)
        if folder is not None and here.main:
            check_writable(folder)
        resumed = None
        if resume and folder is not None:  # loads weights, optimizer, scheduler and scaler from last.safetensors
            resumed = load_run(folder, model, optimizer, scheduler, scaler, config=cfg.to_dict(),
                               with_best=cfg.patience is not None and cfg.restore_best)
        start_epoch = 0
        if resumed is not None:
            history.steps[:], history.epochs[:] = resumed.steps, resumed.epochs
            history.info.update(resumed_from=resumed.epoch, stopped_early=resumed.stopped)
            start_epoch = cfg.epochs if resumed.stopped else resumed.epoch  # early stopping had ended that run
            best = _Best(resumed.best, resumed.bad_epochs, resumed.best_weights)
        _check_something_trains(model)
        # The feature cache: when only the head trains, it trains on backbone features computed once.
        path = choose_path(model, train, val, cfg, task, device, generator, regularizers)
        history.info.update(path.info)
        net, val_net = model, model
        if here.distributed and not cfg.unfreeze_every:
            net = distributed.wrap(model, device)  # averages the gradients over the processes after each backward
        if path.net is not None:
            net, train_loader = path.net, path.train_loader
            if path.val_loader is not None:
                val_net, val_loader = path.net, path.val_loader
        if resumed is not None:
            set_rng_state(resumed.rng, generator)  # last, so the resumed run draws what an unbroken one would
        params = list(model.parameters())
        # Reading a step's loss makes the host wait for the device. On the CPU that costs nothing and
        # a diverged step is caught before it is applied; on a GPU the losses stay there, and a loss
        # that stopped being a number is caught at the end of its epoch (nonfinite="skip" must read
        # each one at once, to skip it). Either way the model goes back to the epoch's start.
        read_each_step = _reads_each_step(device, cfg)
        show = cfg.progress and here.main  # bars and lines: the main process only
        ready = True

        # --- The loop. ---
        for epoch in range(start_epoch, cfg.epochs):
            _unfreeze_for_epoch(model, cfg, epoch, can_train)  # gradual unfreezing (ULMFiT)
            if here.distributed and cfg.unfreeze_every:
                net = distributed.wrap(model, device)  # DDP over what trains in this epoch
            if sampler is not None:
                sampler.set_epoch(epoch)  # the epoch's order: the same in every process
            train_mode(net)  # frozen submodules in eval mode
            # What an interrupt rolls back to (the last epoch's snapshot, overwritten in place).
            snapshot, recorded = snapshot_state(model, into=snapshot), len(history.epochs)
            reset_peak_memory(device)
            start, sums, n = time.perf_counter(), _Sums(), len(train_loader)
            bar = _bar(show, n, f"epoch {epoch + 1}/{cfg.epochs}")  # told of each batch; never reads the data
            not_finite = None  # on the device: did any step's loss of this epoch stop being a number?
            for i, batch in enumerate(train_loader):
                if cfg.nonfinite == "skip" and i % cfg.accumulate == 0:  # what a skipped step gives back
                    kept = {name: b.detach().clone() for name, b in model.named_buffers()}
                batch = to_device(batch, device)
                micro = min(cfg.accumulate, n - (i // cfg.accumulate) * cfg.accumulate)  # in this step
                steps_now = (i + 1) % cfg.accumulate == 0 or i + 1 == n
                # DDP: processes exchange gradients once per optimizer step, not after every micro-batch.
                with _accumulating(net, steps_now), ctx:  # autocast to bf16/fp16 on CUDA; nothing on the CPU
                    outputs, targets = forward_batch(net, batch)
                    loss = compute_loss(task, outputs, targets)
                    penalty = _penalty(model, regularizers, sums)
                # Dividing by the micro-batch count makes accumulated gradients the mean over the big batch.
                total = (loss + penalty) / micro
                (scaler.scale(total) if scaler else total).backward()
                sums.add(task, loss, outputs, targets, micro)
                if steps_now:
                    step_loss, finite = sums.step_loss(), True
                    if here.distributed:  # the step's loss over all processes: all agree on a loss that is not finite
                        step_loss = distributed.mean_over_processes(step_loss)
                    if read_each_step:
                        step_loss = float(step_loss)
                        finite = math.isfinite(step_loss)
                        if not finite and cfg.nonfinite == "stop":  # diverged: stop before the step spreads it
                            raise NonFiniteLossError(_diverged(step_loss, history.step_count + 1, epoch, cfg, dtype))
                    else:
                        bad = ~torch.isfinite(step_loss)
                        not_finite = bad if not_finite is None else not_finite | bad
                    if finite:
                        if scaler:
                            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                        if cfg.clip:
                            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
                        if scaler:
                            scaler.step(optimizer)  # skips the step if fp16 gradients overflowed
                            scaler.update()
                        else:
                            optimizer.step()
                    else:  # nonfinite="skip": no update, and the BatchNorm statistics it moved go back
                        restore_state(model, kept)
                    optimizer.zero_grad(set_to_none=True)
                    sums.end_step(keep=finite)
                    history.add_step({"step": history.step_count + 1, "epoch": epoch + 1,
                                      "loss": step_loss, "lr": optimizer.param_groups[-1]["lr"],
                                      **sums.step_penalty(), **({} if finite else {"skipped": True})})
                    scheduler.step()
                    for hook in on_step:
                        hook(history, model)
                bar.update()
            bar.close()
            if not_finite is not None and bool(not_finite):  # one read per epoch on a GPU
                first = next(s for s in history.steps if s["epoch"] == epoch + 1 and not math.isfinite(s["loss"]))
                raise NonFiniteLossError(_diverged(first["loss"], first["step"], epoch, cfg, dtype))

            # --- The end of an epoch: validation, the record, early stopping, checkpoints. ---
            seconds = time.perf_counter() - start  # training alone, without validation
            if here.distributed:  # the epoch's sums over all processes
                sums.loss, sums.items, sums.examples, sums.correct = distributed.all_sum(
                    [sums.loss, sums.items, sums.examples, sums.correct], device)
            validate = val_loader is not None and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs)
            scores = metrics_from(task, _validate(val_net, val_loader, task, device, dtype, val_share is not val)) \
                if validate else {}
            record = _epoch_record(epoch, task, sums, scores, seconds, history, model, device)
            history.epochs.append(record)
            is_best = best.update(record.get(history.info["monitor"]), history.info["mode"], cfg.min_delta,
                                  model if cfg.patience is not None and cfg.restore_best else None)
            stop = cfg.patience is not None and best.bad_epochs >= cfg.patience
            if folder is not None and here.main:  # one writer: the main process
                save_run(folder, epoch + 1, model, optimizer, scheduler, scaler, config=cfg.to_dict(),
                         history=history.to_dict(), rng=rng_state(generator), is_best=is_best,
                         early={"best": best.value, "bad_epochs": best.bad_epochs, "stopped": stop})
            if folder is not None:
                distributed.barrier()  # every process goes on once the checkpoint is on disk
            _print_epoch(show, epoch, record)
            for hook in on_epoch_end:
                hook(epoch, history, model)
            if stop:
                history.info["stopped_early"] = True
                break
    except KeyboardInterrupt:
        history.info["interrupted"] = True
        if snapshot is not None and len(history.epochs) == recorded:  # the epoch was not completed
            restore_state(model, snapshot)
    except torch.OutOfMemoryError as err:  # a GPU too small for this batch: say what to try, in words
        if snapshot is not None:
            restore_state(model, snapshot)
        release_device_memory(device)
        raise DeviceMemoryError(_out_of_memory(cfg, device)) from err
    except NonFiniteLossError as err:
        if snapshot is not None:
            restore_state(model, snapshot)  # the weights of the last completed epoch
        model.eval()
        history.info["nonfinite"] = True
        err.history = history  # what ran until then
        raise
    finally:
        if user_flags is not None:  # gradual unfreezing belongs to this run: what trains is the user's again
            for p, flag in user_flags:
                p.requires_grad_(flag)
            apply_bn_modes(model, None)
    if ready:
        if best.weights is not None:  # early stopping with restore_best: end on the best epoch
            model.load_state_dict(best.weights)
            history.info["restored_epoch"] = history.best_epoch
        model.eval()
    for hook in on_fit_end:
        hook(history, model)
    # Drop the optimizer, its state and the loaders, and give their memory back to the system.
    optimizer = scheduler = train_loader = val_loader = path = best = net = None
    release_memory()
    return history


_HOOKS = ("on_step", "on_epoch_end", "on_fit_end")


def _with_live_view(callbacks: Sequence[Any], cfg: TrainConfig, live: bool | None, main: bool = True) -> list:
    if not main:  # only the main process draws
        return [c for c in callbacks if not isinstance(c, LiveView)]
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
        self.pending: list[tuple] = []  # the current step's micro-batches, counted once the step is kept
        self.penalties: dict[str, Any] = {}
        self.step_penalties: dict[str, Any] = {}

    def add(self, task, loss, outputs, targets, micro):
        items = count_items(task, targets)
        correct = (outputs.detach().argmax(-1) == targets).sum() if task == "classification" else 0
        self.pending.append((loss.detach().float() * items, items, len(targets), correct))
        self.step = self.step + loss.detach().float() / micro

    def step_loss(self):
        """The step's loss, as a tensor (still on the device): reading it is the caller's choice."""
        value, self.step = self.step, 0.0
        return value

    def end_step(self, keep: bool) -> None:
        """Count the step's micro-batches in the epoch's numbers (a skipped step's are left out)."""
        for loss, items, examples, correct in self.pending if keep else ():
            self.loss, self.items = self.loss + loss, self.items + items
            self.examples, self.correct = self.examples + examples, self.correct + correct
        self.pending = []

    def step_penalty(self) -> dict:
        if not self.step_penalties:
            return {}
        values = dict(self.step_penalties)  # tensors stay on the device; the History reads them when asked
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


def _run_info(cfg: TrainConfig, device, task: str, dtype, has_val: bool, steps_per_epoch: int, optimizer) -> dict:
    """What the History records about the set-up: device, precision, settings, what "best" means, LRs per group."""
    monitor = cfg.monitor if has_val else "train_loss"
    return dict(device=str(device), task=task, amp=str(dtype).replace("torch.", "") if dtype else "fp32",
                config=cfg.to_dict(), monitor=monitor, mode=monitor_mode(monitor), min_delta=cfg.min_delta,
                steps_per_epoch=steps_per_epoch, stopped_early=False,
                layer_lrs={g["group"]: g["initial_lr"] for g in optimizer.param_groups})


def _check_something_trains(model: nn.Module) -> None:
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("Every parameter of the model is frozen, so fit has nothing to train. "
                         "Unfreeze some (ft.unfreeze(model) or ft.freeze(model) to train the head only).")


def _epoch_record(epoch: int, task: str, sums: _Sums, scores: dict, seconds: float, history: History,
                  model: nn.Module, device: torch.device) -> dict:
    """One row of ``history.epochs``: training loss (and accuracy), penalties, validation scores, LR, time, memory."""
    record = {"epoch": epoch + 1, "train_loss": float(sums.loss) / max(1, int(sums.items))}
    if task == "classification":
        record["train_accuracy"] = float(sums.correct) / max(1, sums.examples)
    if sums.penalties:
        means = {k: float(sum(v) / len(v)) for k, v in sums.penalties.items()}
        record["penalty"] = sum(means.values())
        record["penalties"] = means
    record.update({f"val_{k}": v for k, v in scores.items()})
    skipped = sum(1 for s in history.steps if s["epoch"] == epoch + 1 and s.get("skipped"))
    if skipped:
        record["skipped_steps"] = skipped  # nonfinite="skip": steps whose loss was not a number
    record.update(lr=history.steps[-1]["lr"] if history.steps else None, time_s=round(seconds, 3),
                  samples_per_s=round(sums.examples / max(seconds, 1e-9)),
                  peak_memory_mb=round(peak_memory_mb(device), 1),
                  trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
    return record


@dataclass
class _Best:
    """Early stopping's memory: the best monitored value, the epochs since it improved, and its weights."""

    value: float | None = None
    bad_epochs: int = 0
    weights: dict | None = None  # CPU copies, kept only with early stopping and restore_best

    def update(self, value: float | None, mode: str, min_delta: float, keep: nn.Module | None) -> bool:
        """Record an epoch's monitored value; True when it is the best so far (``keep``'s weights are then copied)."""
        if not improved(value, self.value, mode, min_delta):
            self.bad_epochs += 1
            return False
        self.value, self.bad_epochs = value, 0
        if keep is not None:
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in keep.state_dict().items()}
        return True


def _out_of_memory(cfg: TrainConfig, device) -> str:
    """What to try when a batch does not fit in the device's memory."""
    half, effective = max(1, cfg.batch_size // 2), cfg.batch_size * cfg.accumulate
    return (f"The {device} ran out of memory training with batch_size={cfg.batch_size}; the model is back at the "
            f"weights its epoch began with. Try batch_size={half}, accumulate={effective // half} (the same effective "
            f"batch of {effective}), or let ft.find_batch_size(model, data, batch_size={cfg.batch_size}) find the "
            "largest that fits. Also: train fewer layers (ft.freeze_to), mixed precision (amp=True), shorter texts "
            "(load_dataset(..., max_length=64)), or a smaller model.")


def _diverged(value: float, step: int, epoch: int, cfg: TrainConfig, dtype) -> str:
    """The message of a run whose loss stopped being a number: where, why it usually happens, what to do."""
    fp16 = (" Mixed precision in float16 can overflow too: try amp=False, or a GPU with bfloat16."
            if dtype == torch.float16 else "")
    return (f"The training loss became {value} at step {step} (epoch {epoch + 1}), so training stopped there; "
            f"the model has the weights it had when epoch {epoch + 1} began. Most often the learning rate is too high "
            f"(this run's: {cfg.lr}): try one 10 times lower, or find one with ft.lr_find(model, data). "
            f"NaN or infinite values in the data cause it too.{fp16} To skip such steps and go on instead: "
            "fit(..., nonfinite='skip'). The History so far is err.history.")


def _print_epoch(show: bool, epoch: int, record: dict) -> None:
    """A line per epoch under the progress bars: the losses and accuracies."""
    if show and not _tqdm_disabled():
        from tqdm.auto import tqdm

        shown = {k: v for k, v in record.items() if isinstance(v, float) and ("loss" in k or "acc" in k)}
        tqdm.write(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))


def _unfreeze_for_epoch(model: nn.Module, cfg: TrainConfig, epoch: int, can_train: set[int]) -> None:
    """ULMFiT's gradual unfreezing: in epoch e, the top 1 + e // k layer groups train.

    Only parameters that could train when ``fit`` began ever train (``can_train``, their
    ids): the user's own freezing stays (LoRA's base weights, groups frozen by hand), and
    so do the BatchNorm modes the user chose (a newly frozen BatchNorm gets "frozen").
    """
    if cfg.unfreeze_every:
        groups = layer_groups(model)
        first = len(groups) - min(len(groups), 1 + epoch // cfg.unfreeze_every)
        for i, group in enumerate(groups):
            for p in group.params:
                p.requires_grad_(i >= first and id(p) in can_train)
        apply_bn_modes(model, None)


def _tqdm_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false", "no")


def _reads_each_step(device: torch.device, cfg: TrainConfig) -> bool:
    """Whether the loop reads each step's loss back at once (see fit: free on the CPU, needed to skip a step)."""
    return device.type == "cpu" or cfg.nonfinite == "skip"


def _bar(show: bool, total: int, desc: str):
    """An epoch's progress bar, which the loop updates after each batch (a silent one when progress is off).

    It is never wrapped around the DataLoader: tqdm.auto's bar makes an iterator of its own
    from what it wraps, and every DataLoader iterator draws a seed from the shuffling
    generator, so the batches would depend on whether the bars are on.
    """
    from tqdm.auto import tqdm

    # Redrawn at most twice a second: in a browser, each redraw of a notebook bar is a message to the page.
    return tqdm(total=total, desc=desc, leave=False, mininterval=0.5,
                disable=not show or _tqdm_disabled())




def _shares(train: Any, val: Any, cfg: TrainConfig, here: distributed.World) -> tuple[Any, Any]:
    """With several processes: the training sampler (each its share, one order for all) and this process's
    share of the validation set. With one: no sampler, and all of ``val``."""
    if not here.distributed:
        return None, val
    if isinstance(train, torch.utils.data.DataLoader):
        raise ConfigError(f"fit runs in {here.size} processes here (torchrun or accelerate launch) and splits the "
                          "training set between them, which it cannot do inside a DataLoader you built: give fit the "
                          "Dataset (data.train) and set batch_size and num_workers in fit.")
    sampler = torch.utils.data.distributed.DistributedSampler(
        train, num_replicas=here.size, rank=here.rank, shuffle=True, seed=cfg.seed or 0)
    if val is None or isinstance(val, torch.utils.data.DataLoader) or len(val) < here.size:
        return sampler, val  # each process validates on all of it
    return sampler, distributed.shard(val, here)


def _validate(net: nn.Module, loader, task: str, device, dtype, shared: bool) -> dict:
    """One validation pass; with the set split between processes, their predictions gathered first."""
    run = collect(net, loader, task, device, dtype)
    return distributed.gather_collected(run) if shared else run


def _accumulating(net: nn.Module, steps_now: bool):
    """DDP's ``no_sync`` for a micro-batch that is not the last of its step: gradients add up locally."""
    if steps_now or not isinstance(net, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()
