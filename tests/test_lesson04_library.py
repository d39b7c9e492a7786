"""What lesson 04 shows of the library's schedules, checked on a tiny model (offline, in seconds).

The lesson prints the learning rates that ``fit`` recorded for a one-cycle and a constant run,
and writes linear warmup + cosine decay in plain PyTorch with ``LambdaLR``. These tests pin
down that ``fit`` applies (and records, in ``history.steps[i]["lr"]``) what the lesson says:
one-cycle starts at a 25th of the peak, peaks a quarter of the way through and ends below 1%
of it; constant keeps the peak; cosine is the hand-written warmup + cosine, step for step.
"""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import ftkit as ft
from ftkit.core.schedules import DEFAULT_WARMUP, ONECYCLE_DIV, lr_factor

pytestmark = pytest.mark.usefixtures("one_thread")

PEAK, EXAMPLES, BATCH, EPOCHS = 3e-3, 100, 16, 5  # the lesson's run: 100 images, batches of 16, 5 epochs
STEPS = EPOCHS * math.ceil(EXAMPLES / BATCH)  # 35


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(EXAMPLES, 6, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _recorded(schedule: str, **overrides) -> list[float]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    history = ft.fit(model, _data(), epochs=EPOCHS, batch_size=BATCH, lr=PEAK, schedule=schedule, progress=False,
                     live=False, **overrides)
    return [s["lr"] for s in history.steps]


def test_onecycle_starts_at_a_25th_of_the_peak_peaks_at_a_quarter_and_ends_below_one_percent():
    lrs = _recorded("onecycle")
    assert len(lrs) == STEPS
    assert ONECYCLE_DIV == 25 and lrs[0] == pytest.approx(PEAK / 25, rel=1e-12)
    assert max(lrs) == pytest.approx(PEAK, rel=1e-12)
    top = lrs.index(max(lrs)) / len(lrs)
    assert 0.15 <= top <= 0.35, top
    rising, falling = lrs[:lrs.index(max(lrs)) + 1], lrs[lrs.index(max(lrs)):]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)
    assert lrs[-1] < PEAK / 100


def test_constant_keeps_the_peak_at_every_step():
    assert _recorded("constant") == [PEAK] * STEPS


def test_fit_records_lr_factor_times_the_peak_for_every_schedule():
    for schedule in ("constant", "step", "cosine", "onecycle"):
        warmup = round(DEFAULT_WARMUP[schedule] * STEPS)
        factor = lr_factor(schedule, STEPS, warmup, math.ceil(EXAMPLES / BATCH))
        assert _recorded(schedule) == pytest.approx([PEAK * factor(s) for s in range(STEPS)], rel=1e-12), schedule


def test_warmup_then_cosine_written_with_lambdalr_matches_fit():
    """The lesson's plain-PyTorch schedule, as a learner would write it, against fit(schedule="cosine")."""
    warm = round(0.1 * STEPS)  # fit's default warmup for cosine: 10% of the steps

    def warmup_cosine(step):
        if step < warm:
            return (step + 1) / (warm + 1)  # linear, never 0
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / (STEPS - warm)))

    optimizer = torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=PEAK)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)
    by_hand = []
    for _ in range(STEPS):
        by_hand.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert _recorded("cosine") == pytest.approx(by_hand, rel=1e-12)
    assert by_hand[warm] == PEAK and by_hand[0] == pytest.approx(PEAK / (warm + 1))
