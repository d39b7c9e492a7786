"""Every plot renders real results (tiny fits on 8x8 digits) to PNG, with a title and labelled axes."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ftkit as ft  # noqa: E402
from ftkit.experiments.analysis import weight_drift
from ftkit.experiments.compare import compare, data_efficiency
from ftkit.experiments.strategies import full, linear_probe, two_phase
from ftkit.viz.model_plots import plot_confusion, plot_lr_find, plot_trainable, plot_weight_drift
from ftkit.viz.plots import figure_png, plot_compare, plot_data_efficiency, plot_forgetting, plot_gap, plot_history

CARD = ft.ModelCard(name="plots-tiny-cnn", source="user", task="image-classification", arch="",
                    input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cnn(pretrained: bool = True) -> nn.Module:
    if pretrained:  # a fixed "pre-trained" draw for the body; the caller's seed still draws nothing else
        state = torch.random.get_rng_state()
        torch.manual_seed(99)
    model = nn.Sequential()
    model.add_module("conv", nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)))
    model.add_module("body", nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.ReLU()))
    model.add_module("fc", nn.Linear(32, 10))
    if pretrained:
        torch.random.set_rng_state(state)
    return model



@pytest.fixture(scope="module")
def data():
    return ft.load_dataset("digits", CARD, seed=0)


@pytest.fixture(scope="module")
def result(data):
    return compare([linear_probe(), two_phase(), full(lr=3e-3)], model=tiny_cnn, model_key="plots-tiny-cnn",
                   data=data, seeds=[0, 1], per_class=5, source=data, cache=False, progress=False, epochs=2,
                   batch_size=16)


def check(fig, title=True, n_labelled=1):
    """A PNG comes out; the axes that carry data have a title (or the figure one) and both axis labels."""
    png = figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    labelled = [ax for ax in fig.axes if ax.get_xlabel() and ax.get_ylabel()]
    assert len(labelled) >= n_labelled
    if title:
        assert all(ax.get_title() for ax in labelled)
    assert fig not in [plt.figure(n) for n in plt.get_fignums()]  # closed: a notebook shows it once
    return fig


def test_plot_history_of_one_run_shows_loss_metric_and_learning_rate(result):
    history = result.history("two-phase", seed=0)
    fig = check(plot_history(history), n_labelled=2)
    loss, metric = fig.axes[0], fig.axes[1]
    assert loss.get_xlabel() == "epoch" and "cross-entropy" in loss.get_ylabel()
    assert metric.get_ylabel() == "accuracy (%)"
    assert any(ax.get_ylabel() == "learning rate (head)" for ax in fig.axes)  # the LR on a second axis
    assert fig._suptitle.get_text() == "Learning curves"


def test_plot_history_overlays_several_runs(result):
    fig = check(plot_history(result), n_labelled=2)  # a result table: one run per strategy
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["linear probe (5/class)", "two-phase (5/class)", "full (5/class)", "train", "validation"]
    check(plot_history([result.history("full", seed=0), result.history("full", seed=1)], metric="f1"),
          n_labelled=2)
    with pytest.raises(ValueError, match="no epochs"):
        plot_history(ft.History())


def test_plot_compare_bars_with_error_bars(result):
    fig = check(plot_compare(result))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "test accuracy (%)" and ax.get_ylabel() == "strategy"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["linear probe", "two-phase", "full"]
    assert len(ax.patches) == 3 and "mean ± std over 2 seeds" in fig._suptitle.get_text()
    fig = check(plot_compare(result, ["accuracy", "time_s", "trainable", "forgetting"]))
    assert [a.get_xlabel() for a in fig.axes] == ["test accuracy (%)", "wall time (s)", "trainable parameters",
                                                  "forgetting (source accuracy drop, % points)"]
    assert all(a.get_title() for a in fig.axes)
    with pytest.raises(KeyError, match="columns"):
        plot_compare(result, "nonsense")


def test_plot_data_efficiency_has_a_log_x_axis(data):
    curve = data_efficiency([linear_probe(), full(lr=3e-3)], model=tiny_cnn, model_key="plots-tiny-cnn", data=data,
                            per_class=[1, 2, 4], seeds=[0, 1], cache=False, progress=False, epochs=1, batch_size=16)
    fig = check(plot_data_efficiency(curve))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "training examples per class (log scale)"
    assert len(ax.get_lines()) == 2
    with pytest.raises(ValueError, match="plot_data_efficiency"):
        plot_compare(curve)


def test_plot_confusion_from_evaluate_and_from_a_matrix(result, data):
    fig = check(plot_confusion(result.runs[0]["report"]))
    assert fig.axes[0].get_xlabel() == "predicted class" and fig.axes[0].get_ylabel() == "true class"
    assert fig.axes[0].get_title().startswith("Confusion matrix (accuracy")
    check(plot_confusion([[5, 1], [2, 7]], ["cat", "dog"], normalize=False))
    with pytest.raises(ValueError, match="square"):
        plot_confusion([[1, 2, 3]])


def test_plot_weight_drift_from_the_analysis_table():
    before = tiny_cnn()
    after = tiny_cnn()
    with torch.no_grad():
        after.fc.weight.add_(0.5)
        after.body[1].weight.mul_(1.1)
    table = weight_drift(before, after)
    fig = check(plot_weight_drift(table))
    ax = fig.axes[0]
    assert [p.get_x() + p.get_width() / 2 for p in ax.patches] == pytest.approx([0, 1, 2])  # one bar per group
    assert [p.get_height() for p in ax.patches] == pytest.approx([r["drift"] for r in table.rows])
    assert fig.axes[0].get_xlabel() == "layer group (input → output)"
    assert fig.axes[0].get_ylabel().startswith("drift")
    check(plot_weight_drift({"full": table, "frozen": weight_drift(before, before)}))
    check(plot_weight_drift([{"group": "a", "relative_change": 0.1}, {"group": "b", "relative_change": 0.3}]))


def test_plot_lr_find_marks_the_suggestion(data):
    found = ft.lr_find(tiny_cnn(), data.train, num_steps=30, batch_size=32)
    fig = check(plot_lr_find(found))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate (log scale)"
    assert any(label.startswith("suggestion") for label in ax.get_legend_handles_labels()[1])


def test_plot_trainable_from_a_model_and_from_the_summary():
    model = tiny_cnn()
    ft.freeze(model)
    fig = check(plot_trainable(model))
    assert fig.axes[0].get_title().startswith("Trainable parameters: 330 of")
    check(plot_trainable(ft.trainable_summary(model), log=True))
    ft.unfreeze(model)
    assert plot_trainable(model).axes[0].get_title().endswith("(100%)")  # not "(1e+02%)"


def test_plot_forgetting_over_epochs(result):
    fig = check(plot_forgetting(result.history("full", seed=0)))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "accuracy (%)" and ax.get_xlabel() == "epoch (0 = pre-trained)"
    x, _ = ax.get_lines()[0].get_data()
    assert list(x) == [0, 1, 2]  # the pre-trained model, then each epoch
    check(plot_forgetting(result))
    history = ft.History(epochs=[{"epoch": 1, "val_accuracy": 0.5}])
    with pytest.raises(KeyError, match="source_accuracy"):
        plot_forgetting(history)


def test_plot_gap_joins_train_and_held_out_accuracy(data):
    model = tiny_cnn()
    train = ft.few_shot(data.train, per_class=3)
    ft.fit(model, train, epochs=2, progress=False)
    gaps = {"baseline": ft.generalization_gap(model, train, data.test),
            "other": {"train_accuracy": 0.9, "held_out_accuracy": 0.85}}
    fig = check(plot_gap(gaps))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "accuracy (%)" and [t.get_text() for t in ax.get_yticklabels()] == ["baseline", "other"]
    assert "gap 5.0" in [t.get_text() for t in ax.texts]
    assert max(ax.get_xticks()) <= 100
    check(plot_gap([dict(gaps["other"], setting="as rows")]))
    with pytest.raises(ValueError, match="held_out_accuracy"):
        plot_gap({"regression": {"loss_gap": 0.1}})


def test_plot_gap_takes_a_comparison_with_its_spread_over_seeds(data):
    result = compare([linear_probe(), full(lr=3e-3)], model=tiny_cnn, model_key="plots-tiny-cnn", data=data,
                     seeds=[0, 1], per_class=3, gap=True, cache=False, progress=False, epochs=2, batch_size=16)
    fig = check(plot_gap(result))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["linear probe", "full"]
    rows = result.rows
    assert [t.get_text() for t in ax.texts] == [f"gap {100 * (r['train_accuracy'] - r['accuracy']):.1f}" for r in rows]
    assert len(ax.collections) >= 4  # the lines, two sets of points and the error bars (std over seeds)


def test_plot_history_draws_validation_where_it_was_measured():
    # fit(val_every=2): epochs 1 and 3 have no validation; the curve joins the epochs that have it.
    epochs = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.5}
              | ({"val_loss": 1.2 / e, "val_accuracy": 0.4 + e / 10} if e % 2 == 0 or e == 5 else {})
              for e in range(1, 6)]
    fig = check(plot_history(ft.History(epochs=epochs, info={"task": "classification"})), n_labelled=2)
    validation = [line for line in fig.axes[0].lines if line.get_label() == "validation"][0]
    assert list(validation.get_xdata()) == [2, 4, 5] and validation.get_linestyle() == "-"
    accuracy = [line for line in fig.axes[1].lines if line.get_label() == "validation"][0]
    assert list(accuracy.get_ydata()) == pytest.approx([60.0, 80.0, 90.0])
