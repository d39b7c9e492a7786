"""Learning-rate schedules as formulas: the multiplier of the peak LR at each optimizer step.

``lr_factor`` is plain arithmetic on the step number, with no optimizer in sight, so the
training loop (``ftkit.train.optim.make_scheduler`` wraps it in torch's ``LambdaLR``) and
the plots (``ft.plot_lr_schedules``) draw the same curve from one definition.

Example:
    >>> f = lr_factor("onecycle", total_steps=100, warmup=25)
    >>> [round(f(s), 3) for s in (0, 25, 99)]
    [0.04, 1.0, 0.0]
"""
from __future__ import annotations

import math
from typing import Callable

from .errors import ConfigError

SCHEDULES = ("constant", "step", "cosine", "onecycle")


# One-cycle's start and end, as fastai's fit_one_cycle: lr/25 up to lr, then down to lr/1e5.
ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 25.0, 1e5
DEFAULT_WARMUP = {"constant": 0, "step": 0, "cosine": 0.1, "onecycle": 0.25}


def warmup_steps(warmup: int | float | None, total_steps: int, schedule: str = "cosine") -> int:
    """Warmup in optimizer steps: an int is steps, a float < 1 a fraction of ``total_steps``."""
    if warmup is None:
        warmup = DEFAULT_WARMUP[schedule]
    if isinstance(warmup, bool) or warmup < 0 or (isinstance(warmup, float) and warmup >= 1):
        raise ConfigError(f"warmup is a number of steps (int >= 0) or a fraction of all steps (float < 1); "
                         f"got {warmup!r}.")
    return round(warmup * total_steps) if isinstance(warmup, float) else int(warmup)


def lr_factor(schedule: str, total_steps: int, warmup: int = 0, steps_per_epoch: int = 1,
              step_size: int = 0, gamma: float = 0.1) -> Callable[[int], float]:
    """The multiplier of each group's LR at optimizer step ``s`` (0-based), for ``LambdaLR``.

    - "constant": 1 after warmup.
    - "step": times ``gamma`` every ``step_size`` epochs; with ``step_size=0``, at 1/2 and
      3/4 of training (the ResNet recipe, He et al. 2016).
    - "cosine": half a cosine from 1 to 0 after warmup (SGDR, Loshchilov & Hutter 2017).
    - "onecycle": cosine up from 1/25 to 1 over the warmup, then down to 1e-5 (Smith
      2018, "super-convergence", as in fastai's fit_one_cycle; momentum is not cycled here).

    Warmup is linear, ``(s + 1) / (warmup + 1)`` as in nanoGPT, so no step has LR 0.

    Example:
        >>> f = lr_factor("cosine", total_steps=100, warmup=10)
        >>> [round(f(s), 3) for s in (0, 9, 10, 55, 99)]
        [0.091, 0.909, 1.0, 0.5, 0.0]
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    total = max(1, total_steps)

    def cos_between(start: float, end: float, progress: float) -> float:
        return end + (start - end) * (1 + math.cos(math.pi * min(1.0, progress))) / 2

    def factor(s: int) -> float:
        if schedule == "onecycle":
            if s < warmup:
                return cos_between(1 / ONECYCLE_DIV, 1.0, s / warmup)
            return cos_between(1.0, 1 / ONECYCLE_FINAL_DIV, (s - warmup) / max(1, total - warmup))
        if s < warmup:
            return (s + 1) / (warmup + 1)
        if schedule == "cosine":
            return cos_between(1.0, 0.0, (s - warmup) / max(1, total - warmup))
        if schedule == "step":
            if step_size:
                return gamma ** ((s // steps_per_epoch) // step_size)
            return gamma ** ((s >= total / 2) + (s >= 3 * total / 4))
        return 1.0

    return factor
