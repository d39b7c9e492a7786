"""``ft.bn_drift`` measures BatchNorm statistics exactly; ``plot_bn_drift`` and ``plot_lr_schedules`` draw them."""
import copy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ftkit as ft  # noqa: E402
from ftkit.core.schedules import lr_factor, warmup_steps


def _tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten()),
        nn.Linear(8, 3),
    )


def _forward_in_train_mode(model, batches=3):
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(16, 3, 8, 8) * 3 + 1)


def test_bn_drift_is_zero_for_frozen_statistics_and_exact_for_moved_ones():
    start = _tiny_cnn()
    plain = copy.deepcopy(start).requires_grad_(False)  # frozen "by hand": statistics still move in train mode
    _forward_in_train_mode(plain)
    frozen = ft.freeze_to(copy.deepcopy(start), 2)  # ftkit's "frozen" mode keeps them
    _forward_in_train_mode(frozen)
    moved, kept = ft.bn_drift(start, plain), ft.bn_drift(start, frozen)
    assert [r["layer"] for r in moved.rows] == ["0.1", "1.1"]
    assert all(r["mean shift"] > 0.01 and r["std change"] > 0.1 for r in moved.rows)
    assert all(r["mean shift"] == 0.0 and r["std change"] == 0.0 for r in kept.rows)
    assert [r["mode"] for r in kept.rows] == ["frozen", "frozen"]
    assert moved.rows[0]["mode"] == "weights frozen by hand" and ft.bn_drift(start, start).rows[0]["mode"] == "trains"
    assert moved.footer == "2 of 2 BatchNorm layers moved" and kept.footer.startswith("0 of 2")
    # the numbers are the formula in the docstring
    a, b = start[0][1], plain[0][1]
    sd0 = (a.running_var.double() + a.eps).sqrt()
    expected = ((b.running_mean.double() - a.running_mean.double()).abs() / sd0).mean()
    assert moved.rows[0]["mean shift"] == pytest.approx(float(expected), rel=1e-12)
    with pytest.raises(ValueError, match="no BatchNorm"):
        ft.bn_drift(nn.Linear(2, 2), nn.Linear(2, 2))


def test_plot_bn_drift_and_plot_lr_schedules_render():
    start = _tiny_cnn()
    plain = copy.deepcopy(start).requires_grad_(False)
    _forward_in_train_mode(plain)
    fig = ft.plot_bn_drift({"by hand": ft.bn_drift(start, plain), "frozen": ft.bn_drift(start, start)})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["by hand", "frozen  (no change: 0)"] and fig.axes[0].get_xlabel()
    assert ft.figure_png(fig)[:4] == b"\x89PNG" and fig not in [plt.figure(n) for n in plt.get_fignums()]
    with pytest.raises(KeyError, match="bn_drift"):
        ft.plot_bn_drift([{"group": "x"}])

    fig = ft.plot_lr_schedules(total_steps=50, lr=1e-3)
    lines = fig.axes[0].get_lines()
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == "constant"
    assert len(lines) == 4 and ft.figure_png(fig)[:4] == b"\x89PNG"
    for line, name in zip(lines, ("constant", "step", "cosine", "onecycle")):  # exactly what fit applies
        f = lr_factor(name, 50, warmup_steps(None, 50, name), 10)
        assert list(line.get_ydata()) == pytest.approx([1e-3 * f(s) for s in range(50)])
    assert "warmup" in lines[3].get_label() and "warmup" not in lines[0].get_label()
    with pytest.raises(ValueError, match="schedules must be"):
        ft.plot_lr_schedules(["wavy"])
