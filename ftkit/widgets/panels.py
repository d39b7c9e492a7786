"""Widget panels for the lessons: explore freezing, training knobs, strategies and LoRA ranks.

Each panel is a plain class around public ftkit functions (``freeze_to``, ``fit``,
``run_strategy``, ``compare``, ``add_lora``), with its controls in ``panel.controls``,
so a lesson (or a test) drives it from Python exactly as a learner does with the mouse:

    >>> panel = ft.TrainPanel(model, data, epochs=2)  # doctest: +SKIP
    >>> panel                                    # shows it  # doctest: +SKIP
    >>> panel.controls["lr"].value = 1e-2        # or move the slider  # doctest: +SKIP
    >>> history = panel.run()                    # or press Run  # doctest: +SKIP

Building a panel never trains. ``run()`` trains with the current values and returns
the result (the lessons call it, so they run top to bottom with no clicks); the Run
button does the same in a background thread so that Stop works (see ``ftkit.widgets.base.Panel``).
Every run starts from a fresh copy of the starting model, so runs are comparable.
Invalid values and failed runs show a red line in the panel instead of raising.
"""
from __future__ import annotations

import copy
import dataclasses
import html
import math
from typing import Any, Callable, Sequence

from torch import nn

from ..core.history import History
from ..core.schedules import SCHEDULES
from ..core.util import Table
from ..data.transforms import ImageTransform, with_augmentation
from ..experiments import strategies as s
from ..experiments.strategies import L2SPFactory, run_strategy
from ..models.groups import layer_groups
from ..train.config import TrainConfig
from ..train.loop import fit
from ..train.optim import OPTIMIZERS
from ..tuning.freeze import BN_MODES, freeze_to, trainable_summary
from ..tuning.regularize import L1, L2SP, DropoutLinear, set_dropout
from ..viz.live import LiveView
from ..viz.plots import figure_png, plot_trainable
from .base import Panel

_STYLE = {"description_width": "130px"}


def _widgets():
    import ipywidgets

    return ipywidgets


# --- freezing -----------------------------------------------------------------------------------


class FreezeExplorer:
    """A freeze-depth slider on a model: which layer groups train, how many parameters, BatchNorm modes.

    Moving the slider calls ``ft.freeze_to(model, depth, bn=...)`` on the model itself (in
    place), so the model you train next is the one you see. ``depth`` = number of frozen
    groups from the input: 0 trains everything, ``len(groups) - 1`` only the head.

    Example:
        >>> explorer = ft.FreezeExplorer(model)  # doctest: +SKIP
        >>> explorer                              # shows the slider and the table  # doctest: +SKIP
        >>> explorer.controls["depth"].value = 3  # = ft.freeze_to(model, 3)  # doctest: +SKIP
        >>> explorer.trainable                    # trainable parameters now  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, *, bn: str = "frozen"):
        w = _widgets()
        self.model = model
        groups = layer_groups(model)
        self.groups = [g.name for g in groups]
        depth = next((i for i, g in enumerate(groups) if g.trainable), len(groups))  # frozen groups in front
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.controls = {
            "depth": w.IntSlider(value=depth, min=0, max=len(groups), description="frozen groups",
                                 continuous_update=False, style=_STYLE),
            "bn": w.Dropdown(options=[("frozen: statistics fixed", "frozen"), ("train: statistics adapt", "train")],
                             value=bn, description="frozen BatchNorm", disabled=not has_bn, style=_STYLE),
        }
        self.total, self.table, self.message = w.HTML(), w.HTML(), w.HTML()
        self.image = w.Image(format="png")
        for control in self.controls.values():
            control.observe(lambda change: self.apply(), names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())), self.total, w.HBox([self.table, self.image]),
                              self.message])
        self._show()  # construction shows the model as it is; only moving a control changes it

    @property
    def trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def apply(self) -> None:
        """``ft.freeze_to(model, depth, bn=bn)`` with the controls' values, then show the result."""
        depth, bn = self.controls["depth"].value, self.controls["bn"].value
        try:
            if bn not in BN_MODES:
                raise ValueError(f"bn must be one of {BN_MODES}; got {bn!r}.")
            freeze_to(self.model, depth, bn=bn)
        except Exception as err:  # shown, never raised into the notebook
            self.message.value = f"<span style='color:#b00020'>{html.escape(str(err))}</span>"
            return
        self._show()

    def _show(self) -> None:
        summary = trainable_summary(self.model)
        state = {row["group"]: ("frozen" if row["trainable"] == 0 else "trains" if row["trainable"] == row["params"]
                                else "partly trains") for row in summary.rows}
        frozen = [g for g, st in state.items() if st == "frozen"]
        training = [g if st == "trains" else f"{g} (partly)" for g, st in state.items() if st != "frozen"]
        words = (f"frozen: {', '.join(frozen) or 'nothing'}; training: {', '.join(training) or 'nothing'}"
                 + ("  (nothing trains: fit would refuse)" if not training else ""))
        self.total.value = f"<b>{html.escape(summary.footer)}</b><br>{html.escape(words)}"
        self.table.value = summary._repr_html_()
        self.message.value = ""
        try:
            self.image.value = figure_png(plot_trainable(summary))
        except Exception as err:  # the table says it all; a picture that fails must not break the slider
            self.message.value = f"(no picture: {html.escape(f'{type(err).__name__}: {err}')})"

    def _ipython_display_(self, **kwargs):
        from IPython.display import display

        display(self.widget)


# --- training knobs -------------------------------------------------------------------------------

_KNOBS = ("lr", "epochs", "schedule", "optimizer", "weight_decay", "dropout", "augment", "l1", "l2sp", "patience",
          "strategy")


class TrainPanel(Panel):
    """Training knobs, a Run button, live curves, and a table with one row per run.

    Args:
        model: the starting model (copied now; each run trains a fresh copy) or a function
            that returns a fresh starting model.
        data: ``ft.Splits`` (trains on ``train``, validates on ``val``) or ``(train, val)``.
        show: the names of the controls to show (default: all that apply); hidden ones keep
            their values and can still be set from code.
        strategies: strategies offered in the ``strategy`` control (default: the ready-made
            ones); ``"none"`` trains the model with its freezing as given.
        callbacks: ``fit`` callbacks for every run, beside the live view (``ft.ForgettingMeter(...)``).
        **settings: starting values of controls (``lr=1e-3``, ``epochs=3``, ``schedule``,
            ``optimizer``, ``weight_decay``, ``dropout``, ``augment``, ``l1``, ``l2sp``, ``patience``,
            ``strategy``), or other ``TrainConfig`` fields used for every run (``batch_size=64``).

    After a run: ``panel.history`` (the last History), ``panel.histories``, ``panel.model``
    (the last trained model), ``panel.results`` (a table with one row per run).

    Example:
        >>> panel = ft.TrainPanel(model, data, epochs=2, show=("lr", "schedule", "epochs"))  # doctest: +SKIP
        >>> panel.run(lr=1e-2)  # doctest: +SKIP
        >>> panel.results  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module | Callable[[], nn.Module], data: Any, *, show: Sequence[str] | None = None,
                 strategies: Sequence[Any] | None = None, callbacks: Sequence[Any] = (), **settings):
        super().__init__()
        w = _widgets()
        self._fresh = _model_source(model)
        self.callbacks = list(callbacks)  # fit callbacks for every run (e.g. ft.ForgettingMeter), beside the view
        self.train, self.val = _splits(data)
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = [k for k in settings if k not in _KNOBS and k not in fields]
        if unknown:
            raise TypeError(f"TrainPanel got unknown settings {unknown}: give control values ({', '.join(_KNOBS)}) "
                            "or TrainConfig fields.")
        self.fixed = {k: v for k, v in settings.items() if k not in _KNOBS}  # the same for every run
        start = {k: v for k, v in settings.items() if k in _KNOBS}
        TrainConfig(**{k: v for k, v in settings.items() if k in fields})  # checks them, with a clear message
        self._strategies = _strategy_choices(strategies)
        dropout = self._dropout0 = _dropout_of(model) if isinstance(model, nn.Module) else None
        base = TrainConfig()
        c = self.controls
        c["lr"] = w.FloatLogSlider(value=base.lr, base=10, min=-6, max=0, step=0.1, readout_format=".1e",
                                   description="learning rate", continuous_update=False, style=_STYLE)
        c["epochs"] = w.IntSlider(value=base.epochs, min=1, max=max(20, start.get("epochs", 0)), description="epochs",
                                  continuous_update=False, style=_STYLE)
        c["schedule"] = w.Dropdown(options=list(SCHEDULES), value=base.schedule, description="LR schedule",
                                   style=_STYLE)
        c["optimizer"] = w.Dropdown(options=list(OPTIMIZERS), value=base.optimizer, description="optimizer",
                                    style=_STYLE)
        c["weight_decay"] = w.FloatSlider(value=base.weight_decay, min=0.0, max=0.5, step=0.005,
                                          readout_format=".3f", description="weight decay",
                                          continuous_update=False, style=_STYLE)
        c["dropout"] = w.FloatSlider(value=dropout or 0.0, min=0.0, max=0.9, step=0.05,
                                     description="dropout", continuous_update=False, style=_STYLE)
        augment = getattr(self.train, "augment", "none")
        c["augment"] = w.Dropdown(options=["none", "light", "strong"],
                                  value=augment if augment in ("none", "light", "strong") else "none",
                                  description="augmentation", style=_STYLE)
        c["l1"] = w.Dropdown(options=[("off", 0.0), ("1e-6", 1e-6), ("1e-5", 1e-5), ("1e-4", 1e-4), ("1e-3", 1e-3)],
                             value=0.0, description="L1 strength", style=_STYLE)
        c["l2sp"] = w.Dropdown(options=[("off", 0.0), ("0.001", 1e-3), ("0.01", 1e-2), ("0.1", 0.1), ("1", 1.0),
                                        ("10", 10.0)],
                               value=0.0, description="L2-SP alpha", style=_STYLE)
        c["patience"] = w.IntSlider(value=0, min=0, max=10, description="patience (0: off)",
                                    continuous_update=False, style=_STYLE)
        c["strategy"] = w.Dropdown(options=["none"] + list(self._strategies), value="none",
                                   description="strategy", style=_STYLE)
        if dropout is None:
            self._why_disabled["dropout"] = "the model has no dropout layers (or was given as a function)"
        if not _can_augment(self.train) or augment not in ("none", "light", "strong"):
            self._why_disabled["augment"] = "augmentation presets apply to ftkit image datasets"
        if self.val is None:
            self._why_disabled["patience"] = "early stopping watches validation data, and there is none"
        c["strategy"].observe(self._strategy_changed, names="value")
        self._set(start)  # the starting values, checked like any others
        for name in self._why_disabled:
            c[name].disabled = True
        shown = [n for n in (show or _KNOBS) if n in c and (show is not None or n not in self._why_disabled)]
        bad = [n for n in (show or ()) if n not in c]
        if bad:
            raise TypeError(f"show={bad}: no such control; the controls are {', '.join(c)}.")
        self.view = LiveView(display=False)
        self.table = w.HTML()
        self.histories: list[History] = []
        self.model: nn.Module | None = None
        self._rows: list[dict] = []
        self._shown = shown
        half = (len(shown) + 1) // 2
        knobs = w.HBox([w.VBox([c[n] for n in shown[:half]]), w.VBox([c[n] for n in shown[half:]])])
        self.widget = w.VBox([knobs, w.HBox([self.run_button, self.stop_button]), self.message,
                              self.view.widget, self.table])

    _first = ("strategy",)  # set before the others: choosing a strategy sets the LR control to its LR

    def _set(self, values: dict) -> None:
        ordered = {k: values[k] for k in self._first if k in values}
        super()._set(ordered | {k: v for k, v in values.items() if k not in ordered})

    @property
    def history(self) -> History | None:
        return self.histories[-1] if self.histories else None

    @property
    def results(self) -> Table:
        return Table(self._rows, title="runs", footer="gap = val loss - train loss (large: overfitting)")

    def _strategy_changed(self, change) -> None:
        """Show the recipe's own settings in the controls (its peak LR, e.g. L2-SP's weight_decay=0)."""
        strategy = self._strategies.get(change["new"])
        if strategy is not None:
            slider = self.controls["lr"]
            slider.value = min(max(_peak_lr(strategy), slider.base ** slider.min), slider.base ** slider.max)
            for name, value in strategy.train:
                if name in self.controls and name not in self._why_disabled:
                    self.controls[name].value = value

    def _run(self, v: dict) -> History:
        model = self._fresh()
        if "dropout" not in self._why_disabled and v["dropout"] != self._dropout0:  # else: the model's own rates
            _set_dropout(model, v["dropout"])
        train = with_augmentation(self.train, v["augment"]) if "augment" not in self._why_disabled else self.train
        settings = dict(self.fixed, optimizer=v["optimizer"], weight_decay=v["weight_decay"],
                        patience=v["patience"] or None, progress=False)
        n = len(self._rows) + 1
        self.view.title = f"run {n}"
        self.view.reset(f"run {n}: starting...")
        callbacks = [*self.callbacks, self.stopper(), self.view]
        strategy = self._strategies.get(v["strategy"])
        if strategy is None:
            regularizers = [_l2sp(model, v["l2sp"])] if v["l2sp"] else []
            regularizers += [_l1(v["l1"])] if v["l1"] else []
            history = fit(model, train, self.val, lr=v["lr"], epochs=v["epochs"], schedule=v["schedule"],
                          callbacks=callbacks, regularizers=regularizers, **settings)
        else:
            strategy = _with_knobs(strategy, v["lr"], v["epochs"], v["schedule"], v["l2sp"], v["l1"])
            seed = settings.pop("seed", 0)
            history = run_strategy(strategy, model, train, self.val, seed=seed, callbacks=callbacks, **settings)
            self.view.on_fit_end(history)  # the merged History of all phases
        self.histories.append(history)
        self.model = model
        self._rows.append(_result_row({"run": n, **{k: v[k] for k in self._shown}}, history))
        self.table.value = self.results._repr_html_()
        self.say(f"run {n}: " + _outcome(history))
        return history


def _model_source(model) -> Callable[[], nn.Module]:
    """A function returning a fresh starting model: a copy of the one given now, or the factory's."""
    if isinstance(model, nn.Module):
        start = copy.deepcopy(model)
        return lambda: copy.deepcopy(start)
    if callable(model):
        def fresh():
            made = model()
            if not isinstance(made, nn.Module):
                raise TypeError(f"The model function returned a {type(made).__name__}, not an nn.Module.")
            return made
        return fresh
    raise TypeError(f"Give a model (nn.Module) or a function that returns a fresh one; got {type(model).__name__}.")


def _splits(data) -> tuple[Any, Any]:
    if hasattr(data, "train"):
        return data.train, getattr(data, "val", None)
    if isinstance(data, (tuple, list)) and 1 <= len(data) <= 3:
        return data[0], (data[1] if len(data) > 1 else None)
    raise TypeError("data must be ft.Splits (from ft.load_dataset) or a (train, val) pair of datasets; "
                    f"got {type(data).__name__}.")


def _strategy_choices(strategies, include_scratch: bool = False) -> dict:
    if strategies is None:
        made = [s.linear_probe(), s.partial(2), s.full(), s.two_phase(), s.gradual_unfreeze(), s.discriminative(),
                s.l2sp(), s.lora(8), s.bitfit()]
        strategies = ([s.scratch()] if include_scratch else []) + made
    out = {}
    for strategy in strategies:
        name = getattr(strategy, "name", None)
        if not isinstance(name, str) or name in out or name == "none":
            raise ValueError(f"Strategies need distinct names (and not 'none'); got {strategy!r}.")
        out[name] = strategy
    return out


def _dropout_of(model: nn.Module) -> float | None:
    """The rate of the model's first dropout layer (what ``ft.set_dropout`` changes), or None."""
    rates = [m.p for m in model.modules() if isinstance(m, (nn.modules.dropout._DropoutNd, DropoutLinear))]
    return rates[0] if rates else None


def _set_dropout(model: nn.Module, p: float) -> None:
    set_dropout(model, p)


def _l1(strength: float):
    return L1(strength)


def _l2sp(model: nn.Module, alpha: float):
    return L2SP(model, alpha=alpha)


def _can_augment(train) -> bool:
    return isinstance(getattr(train, "transform", None), ImageTransform)


def _peak_lr(strategy) -> float:
    lrs = [p.lr for p in strategy.phases] or [strategy.lr]
    return max(lr.stop if isinstance(lr, slice) else lr for lr in lrs)


def _with_knobs(strategy, lr: float, epochs: int, schedule: str, l2sp: float, l1: float):
    """The strategy with its learning rates scaled so the peak is ``lr``, and the panel's epochs and schedule."""
    k = lr / _peak_lr(strategy)
    scale = lambda x: slice(None if x.start is None else x.start * k, x.stop * k) if isinstance(x, slice) else x * k
    phases = tuple(dataclasses.replace(p, lr=scale(p.lr)) for p in strategy.phases)
    regularizers = strategy.regularizers
    if l2sp:
        regularizers = regularizers + (L2SPFactory(alpha=l2sp),)
    if l1:
        regularizers = regularizers + (lambda model: L1(l1),)
    train = tuple((name, value) for name, value in strategy.train if name not in _KNOBS)  # the controls hold these
    return dataclasses.replace(strategy, lr=scale(strategy.lr), phases=phases, epochs=epochs, schedule=schedule,
                               regularizers=regularizers, train=train)


def _result_row(settings: dict, history: History) -> dict:
    """One row of a panel's results table: the settings, then the last epoch's numbers and the outcome."""
    row = dict(settings)
    last = history.epochs[-1] if history.epochs else {}
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss"), ("val_accuracy", "val accuracy")):
        if key in last:
            row[label] = last[key]
    if "train_loss" in last and "val_loss" in last:
        row["gap"] = last["val_loss"] - last["train_loss"]
    if "trainable" in last:
        row.setdefault("trainable", last["trainable"])
    row["best epoch"] = history.best_epoch
    row["time (s)"] = round(sum(e.get("time_s", 0.0) for e in history.epochs), 1)
    row["note"] = ("interrupted" if history.interrupted else "stopped early" if history.stopped_early else "")
    return row


def _outcome(history: History) -> str:
    if not history.epochs:
        return "stopped before the first epoch ended (the model is unchanged)"
    last = history.epochs[-1]
    parts = [f"{len(history.epochs)} epoch(s)"]
    parts += [f"{k.replace('_', ' ')} {last[k]:.4f}" for k in ("val_accuracy", "val_loss", "train_loss")
              if isinstance(last.get(k), float) and not math.isnan(last[k])]
    if history.interrupted:
        parts.append("interrupted: the model holds the last completed epoch")
    elif history.stopped_early:
        parts.append(f"stopped early, best epoch {history.best_epoch}")
    return ", ".join(parts)
