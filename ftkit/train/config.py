"""``TrainConfig``: everything ``fit`` can be told, checked when it is made.

Example:
    >>> cfg = ft.TrainConfig(epochs=3, lr=slice(1e-5, 1e-3))
    >>> ft.fit(model, data.train, data.val, cfg, batch_size=16)   # keywords override fields  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..core.errors import ConfigError
from ..core.schedules import SCHEDULES, warmup_steps
from ..core.util import suggest
from .optim import OPTIMIZERS


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``fit`` can be told. ``ft.fit(model, train, val, epochs=3, lr=1e-4)`` overrides fields."""

    epochs: int = 3  # passes over the training data
    lr: float | slice = 1e-3  # peak learning rate; slice(lo, hi): discriminative LRs (ULMFiT), first group lo, head hi
    lr_mult: tuple[float, ...] | None = None  # one LR multiplier per layer group (input -> output), instead of a slice
    batch_size: int = 32  # examples per forward pass (per process when several train: torchrun, accelerate launch)
    accumulate: int = 1  # micro-batches per optimizer step: the effective batch is batch_size * accumulate
    optimizer: str = "adamw"  # "adamw" (Loshchilov & Hutter 2019), "adam", "sgd" (with momentum), "rmsprop"
    weight_decay: float = 0.01  # on weight matrices only, never on biases or normalisation parameters
    momentum: float = 0.9  # SGD's momentum
    schedule: str = "onecycle"  # "constant", "step", "cosine" (linear warmup), "onecycle" (Smith 2018; fastai)
    warmup: int | float | None = None  # steps (int) or fraction of all steps (float < 1); None: the schedule's default
    step_size: int = 0  # "step" schedule: epochs between LR drops; 0: drop at 1/2 and 3/4 of training
    gamma: float = 0.1  # "step" schedule: the factor of each drop
    clip: float | None = None  # clip the gradients' global norm to this (Pascanu et al. 2013); None: no clipping
    unfreeze_every: int | None = None  # gradual unfreezing (ULMFiT): head only first, one more group every k epochs;
    # only what could train when fit began ever trains, and afterwards the flags are as before
    patience: int | None = None  # early stopping after this many epochs without improvement; None: never stop early
    min_delta: float = 0.0  # the smallest change in the monitored value that counts as an improvement
    monitor: str = "val_loss"  # what "best" means: val_loss, val_accuracy, val_f1, val_mae, ... (train_loss w/o val)
    restore_best: bool = True  # with early stopping, end with the best epoch's weights
    task: str | None = None  # None: the model card's task, else the dataset's .task, else classification
    device: str | None = None  # None: CUDA if present, else MPS, else CPU
    amp: bool = True  # mixed precision on CUDA (bf16, or fp16 with a GradScaler); the CPU always trains in fp32
    seed: int | None = 0  # seeds Python, NumPy, torch and the shuffling (CPU runs are bit-identical); None: don't
    num_workers: int = 0  # DataLoader worker processes (0: load in the main process)
    val_every: int = 1  # validate after every k-th epoch (and always after the last); 1: every epoch
    eval_batch_size: int | None = None  # batch size for validation and the feature cache; None: 2 * batch_size
    feature_cache: bool = True  # with only the head training, compute the backbone's features once
    progress: bool = True  # tqdm progress bars (also off when the environment sets TQDM_DISABLE=1)
    nonfinite: str = "stop"  # a NaN or infinite loss: "stop" (an error naming the step) or "skip" (no update that step)

    def __post_init__(self):
        if self.lr_mult is not None:
            object.__setattr__(self, "lr_mult", tuple(float(m) for m in self.lr_mult))
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs must be a whole number >= 1."),
            (self.batch_size >= 1 and self.accumulate >= 1, "batch_size and accumulate must be >= 1."),
            (self.optimizer in OPTIMIZERS,
             f"optimizer must be one of {OPTIMIZERS}.{suggest(str(self.optimizer), OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}.{suggest(str(self.schedule), SCHEDULES)}"),
            (isinstance(self.lr, slice) or self.lr > 0, "lr must be > 0, or slice(lo, hi) for discriminative LRs."),
            (self.lr_mult is None or min(self.lr_mult) > 0, "lr_mult values must be > 0."),
            (self.clip is None or self.clip > 0, "clip is a maximum gradient norm > 0, or None."),
            (self.unfreeze_every is None or self.unfreeze_every >= 1, "unfreeze_every is a number of epochs >= 1."),
            (self.patience is None or self.patience >= 0, "patience is a number of epochs >= 0, or None."),
            (isinstance(self.val_every, int) and self.val_every >= 1, "val_every is a number of epochs >= 1."),
            (self.val_every == 1 or self.patience is None or not self.monitor.startswith("val_"),
             "early stopping on a validation score needs it every epoch: val_every=1 with patience."),
            (self.nonfinite in ("stop", "skip"), "nonfinite is 'stop' or 'skip'."),
            (self.monitor.startswith(("val_", "train_")), "monitor names an epoch metric, e.g. 'val_loss'."),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"TrainConfig: {message} Got {_fields_text(self)}.")
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


def _fields_text(cfg: TrainConfig) -> str:
    return ", ".join(f"{f.name}={getattr(cfg, f.name)!r}" for f in dataclasses.fields(cfg))
