"""Widget panels and the live view, driven from Python as a lesson drives them (no browser; seconds)."""
import ast
import dataclasses
import threading
from collections import OrderedDict
from pathlib import Path

import ipywidgets
import pytest
import torch
from helpers import blobs
from torch import nn

import ftkit as ft
from ftkit.experiments.strategies import linear_probe
from ftkit.models.cards import ModelCard
from ftkit.train.loop import fit
from ftkit.tuning.freeze import bn_mode
from ftkit.viz.live import LiveView, in_notebook
from ftkit.widgets.base import Panel, Stopper
from ftkit.widgets.boards import CompareBoard, LoRAExplorer
from ftkit.widgets.panels import FreezeExplorer, TrainPanel

CARD = ModelCard(name="tiny-widgets-cnn", source="zoo", task="image-classification", arch="",
                 input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))


def tiny_cnn():
    """Three layer groups (stem, body, head), BatchNorm and dropout: what the panels act on."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        body=nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                           nn.Dropout(0.1)),
        head=nn.Linear(32, 10)))


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digits prepared for the tiny card; small splits, so a run takes a fraction of a second."""
    data = ft.load_dataset("digits", CARD)
    return dataclasses.replace(data, train=data.train.subset(range(128)), val=data.val.subset(range(64)),
                               test=data.test.subset(range(64)))


def mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), nn.Linear(16, 3))


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def red(panel):
    return "#b00020" in panel.message.value


# --- fit's callback objects (the hook the live view and the Stop button use) ---------------------


class Recorder:
    def __init__(self):
        self.calls = []

    def on_step(self, history, model):
        self.calls.append(("step", len(history.steps)))

    def on_fit_end(self, history, model):
        self.calls.append(("end", len(history.epochs)))


def test_fit_calls_object_hooks_per_step_and_plain_functions_per_epoch():
    rec, epochs_seen = Recorder(), []
    history = fit(mlp(), blobs(), blobs(seed=1), epochs=2, batch_size=32, progress=False,
                  callbacks=[rec, lambda epoch, h, m: epochs_seen.append(epoch)])
    steps = [n for kind, n in rec.calls if kind == "step"]
    assert steps == list(range(1, len(history.steps) + 1))  # once per optimizer step, after it is recorded
    assert rec.calls[-1] == ("end", 2) and epochs_seen == [0, 1]  # no on_epoch_end: not called per epoch


def test_keyboard_interrupt_from_on_step_stops_cleanly_and_on_fit_end_still_runs():
    class StopAt(Recorder):
        def on_step(self, history, model):
            super().on_step(history, model)
            if len(history.steps) == 5:
                raise KeyboardInterrupt

    rec = StopAt()
    history = fit(mlp(), blobs(), blobs(seed=1), epochs=3, batch_size=32, progress=False, callbacks=[rec])
    assert history.interrupted and len(history.epochs) == 1  # epoch 2 was cut short and rolled back
    assert rec.calls[-1] == ("end", 1)


# --- the live view ----------------------------------------------------------------------------------


def test_live_view_does_nothing_outside_a_notebook(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    assert not in_notebook()
    view = LiveView()
    history = fit(mlp(), blobs(), blobs(seed=1), epochs=2, batch_size=8, progress=False, callbacks=[view])
    assert len(history.epochs) == 2 and view.renders == 0 and not shown and view._widgets is None  # none made


def test_live_view_throttles_updates_and_always_draws_the_end():
    view = LiveView(display=False)
    sets = []
    view.stats.observe(lambda change: sets.append(change["new"]), names="value")
    start = view._clock()
    history = fit(mlp(), blobs(), blobs(seed=1), epochs=3, batch_size=4, progress=False, callbacks=[view])
    elapsed = view._clock() - start
    steps = len(history.steps)
    assert steps == 3 * 24
    # pictures: at most 4 a second, plus the one at the end of fit; numbers: also at each epoch end
    assert view.renders <= 4 * elapsed + 1 + 1, (view.renders, elapsed)
    assert len(sets) <= view.renders + 3 and view.renders < steps / 4
    assert "done" in view.stats.value and "after epoch 3" in view.stats.value
    assert bytes(view.image.value[:4]) == b"\x89PNG" and view.image.layout.display is None


def test_live_view_throttle_with_a_fake_clock():
    view = LiveView(display=False, every=0.25)
    now = [100.0]
    view._clock = lambda: now[0]
    history = ft.History(steps=[{"step": 1, "epoch": 1, "loss": 1.0, "lr": 1e-3}],
                         info={"config": {"epochs": 1}, "steps_per_epoch": 400})
    drawn = 0
    for i in range(400):  # 400 steps over 2 simulated seconds
        now[0] += 0.005
        history.steps.append({"step": i + 2, "epoch": 1, "loss": 1.0, "lr": 1e-3})
        drawn += view.update(history)
    assert drawn == 8  # 2 s: the first step, then one every 0.25 s
    history.epochs.append({"epoch": 1, "train_loss": 0.5, "val_loss": 0.75})
    assert not view.update(history, epoch_end=True) and "val_loss 0.7500" in view.stats.value  # numbers at once
    assert view.update(history, force=True, done=True) and "done" in view.stats.value


def test_live_view_never_breaks_training_when_drawing_fails(monkeypatch):
    import ftkit.viz.live

    def broken(history):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(ftkit.viz.live, "plot_history", broken)
    view = LiveView(display=False)
    history = fit(mlp(), blobs(), blobs(seed=1), epochs=1, progress=False, callbacks=[view])
    assert len(history.epochs) == 1 and "no curves: RuntimeError: no fonts" in view.stats.value


# --- FreezeExplorer ----------------------------------------------------------------------------------


def test_freeze_explorer_slider_changes_trainable_counts_exactly_as_freeze_to():
    model, reference = tiny_cnn(), tiny_cnn()
    before = [p.requires_grad for p in model.parameters()]
    explorer = FreezeExplorer(model)
    assert [p.requires_grad for p in model.parameters()] == before  # building it changes nothing
    assert explorer.controls["depth"].max == 3 and explorer.controls["depth"].value == 0
    for depth in (2, 1, 3, 0):
        explorer.controls["depth"].value = depth
        ft.freeze_to(reference, depth)
        assert explorer.trainable == trainable(reference)
        assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in reference.parameters()]
        assert f"trainable: {trainable(reference):,} of" in explorer.total.value
        assert "<table>" in explorer.table.value
    explorer.controls["depth"].value = 3
    assert "nothing trains" in explorer.total.value


def test_freeze_explorer_bn_mode_dropdown():
    model = tiny_cnn()
    explorer = FreezeExplorer(model)
    explorer.controls["depth"].value = 1
    assert bn_mode(model.stem[1]) == "frozen" and ">frozen<" in explorer.table.value
    explorer.controls["bn"].value = "train"
    assert bn_mode(model.stem[1]) == "train" and ">train<" in explorer.table.value
    assert FreezeExplorer(mlp()).controls["bn"].disabled  # no BatchNorm: nothing to choose


# --- TrainPanel --------------------------------------------------------------------------------------


def test_train_panel_runs_from_code_and_from_the_button(digits):
    model = tiny_cnn()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ends = []  # a callback of the user's runs beside the live view
    panel = TrainPanel(model, digits, epochs=1, batch_size=32, callbacks=[lambda e, history, m: ends.append(e)])
    assert panel.history is None and panel.table.value == ""  # building it does not train
    first = panel.run()
    assert isinstance(first, ft.History) and len(first.epochs) == 1 and panel.error is None and ends == [0]
    image = panel.view.image.value
    assert bytes(image[:4]) == b"\x89PNG" and len(panel.results) == 1 and "<td>1</td>" in panel.table.value
    # a control changed, then Run clicked: a new History, a new picture, a longer table
    panel.controls["lr"].value = 1e-2
    panel.controls["epochs"].value = 2
    panel.run_button.click()
    second = panel.wait(timeout=60)
    assert second is not first and len(second.epochs) == 2 and second.info["config"]["lr"] == pytest.approx(1e-2)
    assert bytes(panel.view.image.value) != bytes(image) and len(panel.results) == 2
    assert not panel.run_button.disabled and panel.stop_button.disabled
    # every run starts from the same starting model, which the panel never touches
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in start.items())
    again = panel.run(lr=panel.controls["lr"].value, epochs=2)
    assert [e["val_loss"] for e in again.epochs] == [e["val_loss"] for e in second.epochs]


def test_train_panel_rejects_invalid_values_with_a_visible_message(digits):
    panel = TrainPanel(tiny_cnn(), digits, epochs=1)
    assert panel.run(lr=-1) is None and red(panel) and "lr must be a number from 1e-06 to 1" in panel.error
    assert panel.run(lrr=1e-3) is None and "Did you mean 'lr'" in panel.error
    assert panel.run(schedule="wavy") is None and "schedule must be one of" in panel.error
    assert panel.run(epochs=2.5) is None and "whole number" in panel.error
    assert not panel.set(optimizer="lion") and "optimizer" in panel.error
    assert panel.histories == [] and panel.results.rows == []
    blobs_panel = TrainPanel(mlp(), (blobs(), blobs(seed=1)))
    assert blobs_panel.controls["augment"].disabled and blobs_panel.controls["dropout"].disabled
    assert blobs_panel.run(augment="light") is None and "augmentation presets apply" in blobs_panel.error
    frozen = mlp().requires_grad_(False)
    panel = TrainPanel(frozen, (blobs(), blobs(seed=1)), epochs=1)
    assert panel.run() is None and red(panel) and "nothing to train" in panel.error  # fit's error, shown
    with pytest.raises(TypeError, match="unknown settings"):
        TrainPanel(mlp(), (blobs(), None), learning_rate=1e-3)  # a lesson's typo fails loudly at once


def test_train_panel_knobs_reach_the_model_and_data(digits):
    panel = TrainPanel(tiny_cnn(), digits, epochs=1, dropout=0.5, weight_decay=0.1, augment="light", l2sp=0.01,
                       patience=1, batch_size=32)
    history = panel.run()
    assert panel.model.body[-1].p == 0.5 and history.info["config"]["weight_decay"] == 0.1
    assert history.info["config"]["patience"] == 1 and "l2sp" in history.epochs[0]["penalties"]
    assert digits.train.transform.augment is None  # the panel's augmentation is on its own copy
    row = panel.results.rows[0]
    assert row["augment"] == "light" and row["dropout"] == 0.5 and "gap" in row


def test_train_panel_strategy_sets_the_learning_rate_and_what_trains(digits):
    panel = TrainPanel(tiny_cnn(), digits, epochs=1, batch_size=32)
    panel.controls["strategy"].value = "linear probe"
    assert panel.controls["lr"].value == pytest.approx(linear_probe().lr)  # visible: the recipe's LR
    history = panel.run()
    assert history.info["strategy"]["name"] == "linear probe"
    assert history.epochs[0]["trainable"] == 32 * 10 + 10  # the head only
    panel.controls["strategy"].value = "L2-SP"
    assert panel.controls["weight_decay"].value == 0.0  # the recipe's own setting, shown
    history = panel.run(strategy="two-phase", lr=1e-3, epochs=1)  # LRs scaled so the peak is 1e-3
    assert [p["lr"] for p in history.info["strategy"]["phases"]][0] == "0.001" and len(history.epochs) == 2


def test_stop_interrupts_a_run_cleanly(digits):
    panel = TrainPanel(tiny_cnn(), digits, epochs=5, batch_size=8)
    steps = []
    view_step = panel.view.on_step

    def press_stop_at_step_20(history, model):  # the learner presses Stop during epoch 2 (16 steps each)
        steps.append(len(history.steps))
        if len(history.steps) == 20:
            panel.stop()
        view_step(history, model)

    panel.view.on_step = press_stop_at_step_20
    history = panel.run()
    assert history.interrupted and len(history.epochs) == 1  # epoch 2 rolled back
    assert max(steps) == 20 and len(history.steps) == 21  # stopped right after the next step
    assert panel.results.rows[-1]["note"] == "interrupted" and "interrupted" in panel.message.value
    assert "interrupted" in panel.view.stats.value
    # the same from the button, in the background thread
    panel.run_button.click()
    history = panel.wait(timeout=60)
    assert history.interrupted and not panel.running and not panel.run_button.disabled


def test_a_second_run_while_one_is_going_is_refused(digits):
    panel = TrainPanel(mlp(), (blobs(), blobs(seed=1)), epochs=1)
    inside = []

    def try_again(history, model):
        if not inside:
            inside.append(panel.run())  # e.g. Run clicked twice
    panel.view.on_step = try_again
    assert isinstance(panel.run(), ft.History) and inside == [None]
    assert len(panel.histories) == 1


# --- LoRAExplorer and CompareBoard ------------------------------------------------------------------


def test_lora_explorer_counts_and_runs(digits):
    explorer = LoRAExplorer(tiny_cnn, digits, r=2, epochs=1, batch_size=32)
    assert explorer.history is None
    small = explorer._counts[2][0]
    explorer.controls["r"].value = 8
    big = explorer._counts[8][0]
    assert big > small and f"{big:,} of" in explorer.count.value
    history = explorer.run()
    assert len(history.epochs) == 1 and explorer.results.rows[0]["r"] == 8
    assert explorer.results.rows[0]["trainable"] == big and "val accuracy" in explorer.results.rows[0]
    assert explorer.run(r=3) is None and "r must be one of" in explorer.error


def test_compare_board_table_grows(digits, monkeypatch):
    import ftkit.widgets.boards

    calls = []
    real = ftkit.widgets.boards.compare
    monkeypatch.setattr(ftkit.widgets.boards, "compare", lambda s, **kw: calls.append(s[0].name) or real(s, **kw))
    board = CompareBoard(tiny_cnn, digits, seeds=[0], epochs=1, batch_size=32, cache=False)
    assert board.table is None
    table = board.run(strategies=["linear probe"])
    assert [r["strategy"] for r in table.rows] == ["linear probe"] and bytes(board.image.value[:4]) == b"\x89PNG"
    image = board.image.value
    table = board.run(strategies=("linear probe", "full"))
    assert [r["strategy"] for r in table.rows] == ["linear probe", "full"] and calls == ["linear probe", "full"]
    assert bytes(board.image.value) != bytes(image) and "full" in board.html.value
    assert board.run(strategies=()) is None and "Tick at least one" in board.error


# --- showing, and ipywidgets 7 compatibility --------------------------------------------------------


def test_panels_display_their_widget(monkeypatch, digits):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.extend(a))
    panel = TrainPanel(tiny_cnn(), digits, show=("lr", "epochs"))
    panel._ipython_display_()
    FreezeExplorer(tiny_cnn())._ipython_display_()
    assert isinstance(shown[0], ipywidgets.VBox) and isinstance(shown[1], ipywidgets.VBox)
    assert panel.controls["schedule"] not in _tree(panel.widget) and panel.controls["lr"] in _tree(panel.widget)


# The widget classes and constructor arguments used, all present in ipywidgets 7.6 (checked against
# its docs: "Widget List" and "Widget Styling" for 7.x). No TagsInput, Stack, tooltip= (8 only).
IPYWIDGETS_7 = {
    "HTML": {"value"}, "Image": {"value", "format", "width", "height"},
    "Button": {"description", "button_style", "icon", "disabled"},
    "IntSlider": {"value", "min", "max", "step", "description", "continuous_update", "style", "disabled"},
    "FloatSlider": {"value", "min", "max", "step", "description", "continuous_update", "style", "readout_format"},
    "FloatLogSlider": {"value", "base", "min", "max", "step", "description", "continuous_update", "style",
                       "readout_format"},
    "SelectionSlider": {"options", "value", "description", "continuous_update", "style"},
    "Dropdown": {"options", "value", "description", "style", "disabled"},
    "SelectMultiple": {"options", "value", "rows", "description", "style"},
    "Checkbox": {"value", "description"}, "Label": {"value"}, "VBox": set(), "HBox": set(), "Layout": set(),
}


def test_only_ipywidgets_7_api_is_used():
    import ftkit

    root = Path(ftkit.__file__).parent
    # The widgets layer, the live view, and any other module that names ipywidgets.
    sources = sorted({str(p.relative_to(root)) for p in root.rglob("*.py")
                      if "ipywidgets" in p.read_text() or p.parent.name == "widgets"} | {"viz/live.py"})
    assert {"widgets/base.py", "widgets/panels.py", "widgets/boards.py"} <= set(sources), sources
    for source in sources:
        for node in ast.walk(ast.parse((root / source).read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id in ("w", "widgets"):
                name = node.func.attr
                assert name in IPYWIDGETS_7, f"{source}: ipywidgets.{name} is not in the 7.x list"
                extra = {k.arg for k in node.keywords} - IPYWIDGETS_7[name]
                assert not extra, f"{source}: {name}({extra}) not checked against ipywidgets 7.x"
                assert hasattr(ipywidgets, name)
            if isinstance(node, ast.Attribute) and node.attr in ("tooltip", "description_allow_html"):
                raise AssertionError(f"{source}: .{node.attr} is ipywidgets 8 only")


def test_panel_base_and_stopper_are_plain_objects():
    event = threading.Event()
    stopper = Stopper(event)
    stopper.on_step(ft.History())
    event.set()
    with pytest.raises(KeyboardInterrupt):
        stopper.on_step(ft.History())
    assert Panel.threaded


def _tree(widget):
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += _tree(child)
    return out


def test_fit_adds_a_live_view_only_in_a_notebook_and_only_once(monkeypatch):
    import ftkit.train.loop
    from ftkit.train.config import TrainConfig
    from ftkit.train.loop import _with_live_view

    cfg = TrainConfig(progress=True)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert _with_live_view([], cfg, None) == []  # a script: no view
    monkeypatch.setattr(ftkit.train.loop, "in_notebook", lambda: True)
    added = _with_live_view([], cfg, None)
    assert len(added) == 1 and isinstance(added[0], ft.LiveView)
    own = ft.LiveView(display=False)
    assert _with_live_view([own], cfg, None) == [own]  # a panel's own view is not doubled
    assert _with_live_view([], cfg, False) == []
    assert _with_live_view([], TrainConfig(progress=False), None) == []
