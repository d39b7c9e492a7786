"""Widget boards that compare: strategies side by side (``CompareBoard``), LoRA ranks (``LoRAExplorer``), models (``ModelPicker``).

Like the panels in ``ftkit.widgets.panels``, each is a plain class around public functions
(``compare``, ``add_lora``, ``fit``, ``load_model``) with its controls in ``board.controls``;
``run()`` trains (or loads) with the current values, the Run button does the same in a
background thread.

    >>> board = ft.CompareBoard("minilm-l6", data, strategies=[...], seeds=(0,))  # doctest: +SKIP
    >>> board.run()  # doctest: +SKIP
"""
from __future__ import annotations

import html
from typing import Any, Callable, Sequence

from torch import nn

from ..core.history import History
from ..core.util import Table
from ..experiments.compare import compare
from ..experiments.results import ResultTable
from ..models.catalogue import get_card, load_model, offline_models
from ..models.groups import head_name
from ..train.config import TrainConfig
from ..train.loop import fit
from ..tuning.freeze import trainable_summary
from ..tuning.lora import add_lora
from ..viz.live import LiveView
from ..viz.plots import figure_png, plot_compare, plot_history, plot_trainable
from .base import Panel
from .panels import _STYLE, _model_source, _outcome, _result_row, _splits, _strategy_choices, _widgets

# --- comparing strategies ----------------------------------------------------------------------------


class CompareBoard(Panel):
    """Tick strategies, press Run, and watch the comparison table, bars and learning curves grow (``ft.compare``).

    Strategies already compared are kept; Run adds those ticked but not yet run, one at a
    time, so the table, the bars and the curves (validation loss and accuracy per epoch of
    each strategy's first seed) grow while you watch. Stop takes effect at the next training
    step: the run it interrupts is dropped, and ``compare`` has cached every finished run.

    Args:
        model: a catalogue name or a function returning a fresh model (as ``ft.compare``);
            a model object is copied for each run (then results are not cached unless
            ``model_key=...`` names it).
        data: ``ft.Splits`` with train, val and test.
        strategies: those offered (default: the ready-made ones); ``selected``: ticked at first.
        seeds: each strategy runs once per seed (mean and spread in the table).
        **kwargs: passed to ``ft.compare`` (``epochs=2``, ``per_class=8``, ``cache=False``,
            ``callbacks=[...]`` for every run beside the Stop button ...).

    Example:
        >>> board = ft.CompareBoard("minilm-l6", data, epochs=2, per_class=8)  # doctest: +SKIP
        >>> board.run(strategies=["linear probe", "full"])  # doctest: +SKIP
        >>> board.table.best("accuracy")  # doctest: +SKIP
    """

    def __init__(self, model: Any, data: Any, *, strategies: Sequence[Any] | None = None,
                 selected: Sequence[str] | None = None, seeds: Sequence[int] = (0,), **kwargs):
        super().__init__()
        w = _widgets()
        if isinstance(model, nn.Module):
            model = _model_source(model)
            kwargs.setdefault("cache", bool(kwargs.get("model_key")))
        self.callbacks = list(kwargs.pop("callbacks", ()))  # compare's callbacks for every run, beside Stop
        self.model, self.data, self.seeds, self.kwargs = model, data, list(seeds), kwargs
        self._strategies = _strategy_choices(strategies, include_scratch=True)
        names = list(self._strategies)
        chosen = list(selected) if selected is not None else names[:3]
        missing = [s for s in chosen if s not in self._strategies]
        if missing:
            raise ValueError(f"selected={missing}: not among the strategies offered: {names}.")
        self.controls["strategies"] = w.SelectMultiple(options=names, value=tuple(chosen), rows=min(10, len(names)),
                                                       description="strategies", style=_STYLE)
        self.table = None  # a ResultTable: the ticked strategies compared so far
        self._done: dict = {}  # strategy name -> its ResultTable
        self.image = w.Image(format="png")
        self.image.layout.display = "none"
        self.curves = w.Image(format="png")  # learning curves, one line per strategy (its first seed)
        self.curves.layout.display = "none"
        self.html = w.HTML()
        self.widget = w.VBox([self.controls["strategies"], w.HBox([self.run_button, self.stop_button]),
                              self.message, self.image, self.curves, self.html])

    def _run(self, v: dict):
        if not v["strategies"]:
            raise ValueError("Tick at least one strategy to compare.")
        todo = [s for s in v["strategies"] if s not in self._done]
        try:
            for i, name in enumerate(todo, 1):
                self.say(f"running {name} ({i} of {len(todo)})...")
                self._done[name] = compare([self._strategies[name]], model=self.model, data=self.data,
                                           seeds=self.seeds, progress=self._progress,
                                           callbacks=[*self.callbacks, self.stopper()],
                                           **self.kwargs)
                self._show([s for s in v["strategies"] if s in self._done])
        except KeyboardInterrupt:  # Stop: inside a run (it is dropped) or between two
            pass
        self._show([s for s in v["strategies"] if s in self._done])
        new = sum(s in self._done for s in todo)
        self.say(f"compared {len(self.table.rows) if self.table else 0} strategies ({new} new)"
                 + ("; stopped, the finished runs are cached" if self.stopping else ""))
        return self.table

    def _progress(self, run: dict) -> None:
        score = next((f", {m} {run[m]:.4f}" for m in ("accuracy", "mse", "perplexity") if m in run), "")
        self.say(f"{run['strategy']}, seed {run['seed']}{score}" + (" (cached)" if run.get("cached") else ""))
        if self.stopping:
            raise KeyboardInterrupt("stopped with the Stop button")

    def _show(self, names: list[str]) -> None:
        if not names:
            return
        parts = [self._done[n] for n in names]
        first = parts[0]
        self.table = ResultTable([r for t in parts for r in t.rows], [r for t in parts for r in t.runs], first.kind,
                                 first.title, first.footer)
        self.html.value = self.table._repr_html_()
        try:
            self.image.value = figure_png(plot_compare(self.table))
            self.image.layout.display = None
            runs = [r for r in self.table.runs if r.get("history") is not None and r["history"].epochs]
            if runs:  # each strategy's validation curves: how fast it learnt, not only where it ended
                first = ResultTable(self.table.rows, runs, self.table.kind)
                self.curves.value = figure_png(plot_history(first, title="Learning curves (first seed)"))
                self.curves.layout.display = None
        except Exception as err:  # the table is the result; a plot that fails must not hide it
            self.html.value += f"<div>(no plot: {html.escape(f'{type(err).__name__}: {err}')})</div>"


# --- LoRA ------------------------------------------------------------------------------------------


class LoRAExplorer(Panel):
    """A LoRA rank slider: trainable parameters at once, accuracy after a short run (``ft.add_lora``).

    Args:
        model: the pre-trained starting model (copied now) or a function returning a fresh one.
        data: ``ft.Splits`` or ``(train, val)``.
        ranks: the ranks the slider offers; ``r``, ``alpha``, ``epochs``, ``lr``: starting values.
        targets: which layers get LoRA (see ``ft.add_lora``); ``**settings``: TrainConfig fields.

    Example:
        >>> explorer = ft.LoRAExplorer(model, data, epochs=1)  # doctest: +SKIP
        >>> explorer.run(r=4); explorer.run(r=16)  # doctest: +SKIP
        >>> explorer.results  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module | Callable[[], nn.Module], data: Any, *,
                 ranks: Sequence[int] = (1, 2, 4, 8, 16, 32, 64), r: int = 8, alpha: float = 16, epochs: int = 1,
                 lr: float = 1e-3, targets: Any = None, **settings):
        super().__init__()
        w = _widgets()
        TrainConfig(epochs=epochs, lr=lr, **settings)  # checks the settings now, with a clear message
        self._fresh = _model_source(model)
        self.train, self.val = _splits(data)
        self.targets, self.fixed = targets, settings
        ranks = sorted({int(k) for k in ranks} | {int(r)})
        self.controls["r"] = w.SelectionSlider(options=ranks, value=int(r), description="rank r",
                                               continuous_update=False, style=_STYLE)
        alphas = sorted({1, 2, 4, 8, 16, 32, 64, 128} | {alpha})
        self.controls["alpha"] = w.SelectionSlider(options=alphas, value=alpha, description="alpha",
                                                   continuous_update=False, style=_STYLE)
        self.controls["epochs"] = w.IntSlider(value=epochs, min=1, max=max(10, epochs), description="epochs",
                                              continuous_update=False, style=_STYLE)
        self.controls["lr"] = w.FloatLogSlider(value=lr, base=10, min=-6, max=0, step=0.1, readout_format=".1e",
                                               description="learning rate", continuous_update=False, style=_STYLE)
        self.count = w.HTML()
        self.view = LiveView(display=False)
        self.table = w.HTML()
        self.histories: list[History] = []
        self.model: nn.Module | None = None
        self._rows: list[dict] = []
        self._counts: dict[int, tuple[int, int]] = {}
        self.controls["r"].observe(lambda change: self._count(), names="value")
        self.widget = w.VBox([w.HBox([w.VBox([self.controls["r"], self.controls["alpha"]]),
                                      w.VBox([self.controls["epochs"], self.controls["lr"]])]),
                              self.count, w.HBox([self.run_button, self.stop_button]), self.message,
                              self.view.widget, self.table])
        self._count()

    @property
    def history(self) -> History | None:
        return self.histories[-1] if self.histories else None

    @property
    def results(self) -> Table:
        return Table(self._rows, title="LoRA ranks", footer="trainable = LoRA's A and B plus the head")

    def _lora_model(self, r: int, alpha: float) -> nn.Module:
        return add_lora(self._fresh(), r=r, alpha=alpha, targets=self.targets)

    def _count(self) -> None:
        r = self.controls["r"].value
        try:
            if r not in self._counts:
                model = self._lora_model(r, self.controls["alpha"].value)
                self._counts[r] = (sum(p.numel() for p in model.parameters() if p.requires_grad),
                                   sum(p.numel() for p in model.parameters()))
        except Exception as err:  # e.g. targets that match no layer: shown, not raised
            self._fail(err)
            return
        trainable, total = self._counts[r]
        self.count.value = (f"<b>r = {r}: {trainable:,} of {total:,} parameters train "
                            f"({100 * trainable / total:.2f}%)</b>")

    def _run(self, v: dict) -> History:
        model = self._lora_model(v["r"], v["alpha"])
        n = len(self._rows) + 1
        self.view.title = f"run {n}: LoRA r={v['r']}, alpha={v['alpha']:g}"
        self.view.reset(f"{self.view.title}: starting...")
        history = fit(model, self.train, self.val, epochs=v["epochs"], lr=v["lr"], progress=False,
                      callbacks=[self.stopper(), self.view], **self.fixed)
        self.histories.append(history)
        self.model = model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        row = {"run": n, "r": v["r"], "alpha": v["alpha"], "trainable": trainable,
               "trainable %": round(100 * trainable / total, 3)}
        self._rows.append(_result_row(row, history))
        self.table.value = self.results._repr_html_()
        self.say(f"run {n}: " + _outcome(history))
        return history


# --- choosing a model ------------------------------------------------------------------------------

_HEADS = (("pre-trained head", 0), ("new head: 2 classes", 2), ("new head: 5 classes", 5),
          ("new head: 10 classes", 10), ("new head: regression (1 number)", -1))


class ModelPicker(Panel):
    """Pick a model from the catalogue and see what it is: its card, layer groups and parameter counts.

    Choosing a model (or a head) loads it with ``ft.load_model`` and shows what kind of
    network it is, what it was pre-trained on, its input, its head, and its parameters per
    layer group (``ft.trainable_summary``, ``ft.plot_trainable``). ``run(model=...)`` does the
    same from code. Every model looked at adds a row to ``picker.table``, to compare them.

    Args:
        models: the names offered (default: those usable offline here, ``ft.offline_models()``).
        model: the one selected first (default: the first offered). Building loads nothing.
        head: 0 keeps the pre-trained head, ``n`` puts a fresh ``n``-class head on
            (``load_model(name, num_classes=n)``), -1 a regression head (``task="regression"``).

    After a run: ``picker.model`` (the loaded model), ``picker.summary`` (its groups), ``picker.table``.

    Example:
        >>> picker = ft.ModelPicker()
        >>> picker.run(model="glyph-vit")  # doctest: +SKIP
        >>> picker.summary.rows[-1]["group"], picker.table  # doctest: +SKIP
    """

    threaded = False  # loading takes seconds at most; changing a control loads at once

    def __init__(self, models: Sequence[str] | None = None, *, model: str | None = None, head: int = 0):
        super().__init__()

        w = _widgets()
        names = list(models) if models is not None else offline_models()
        for name in names:
            get_card(name)  # an unknown name fails now, with the catalogue's suggestions
        if not names:
            raise ValueError("No models to pick from: give their names, e.g. ft.ModelPicker(['glyph-resnet']).")
        self.controls["model"] = w.Dropdown(options=names, value=model if model is not None else names[0],
                                            description="model", style=_STYLE)
        self.controls["head"] = w.Dropdown(options=list(_HEADS), value=head, description="head", style=_STYLE)
        self.model: nn.Module | None = None
        self.summary: Table | None = None
        self._rows: list[dict] = []
        self.card, self.groups, self.compared = w.HTML(), w.HTML(), w.HTML()
        self.image = w.Image(format="png")
        self.image.layout.display = "none"
        for control in self.controls.values():
            control.observe(lambda change: None if self.running else self.run(), names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())), self.message, self.card,
                              w.HBox([self.groups, self.image]), self.compared])
        self.say("pick a model (or call picker.run())")

    @property
    def table(self) -> Table:
        """One row per model looked at: kind, parameters, layer groups, head, input."""
        return Table(self._rows, title="models compared",
                     footer="params = the sum over layer groups; every parameter is in exactly one group")

    def _run(self, v: dict) -> nn.Module:
        head = v["head"]
        self.say(f"loading {v['model']}...")
        model = load_model(v["model"], num_classes=None if head == 0 else max(head, 1),
                           task="regression" if head == -1 else None)
        self.model, self.summary = model, trainable_summary(model)
        card = model.ftkit_card
        total = sum(p.numel() for p in model.parameters())
        try:
            name = head_name(model)
        except ValueError:  # a bare encoder (MiniLM): features out, no head until you give it one
            name, shape = "none", "a bare encoder: pick a new head to classify"
        else:
            layer = model.get_submodule(name)
            shape = (f"{layer.in_features} → {layer.out_features}" if isinstance(layer, nn.Linear)
                     else type(layer).__name__)
        if card.input_size is not None:
            reads = f"images {'x'.join(map(str, card.input_size))} (channels x height x width)"
        else:
            reads = f"text, up to {card.max_length} tokens"
        row = {"model": card.name, "kind": model_kind(model), "class": type(model).__name__, "params": total,
               "layer groups": len(self.summary.rows),
               "head": f"{name}: {shape}" if name != "none" else "none (bare encoder)", "input": reads}
        self._rows = [r for r in self._rows if (r["model"], r["head"]) != (row["model"], row["head"])] + [row]
        lines = [f"<b>{html.escape(card.name)}</b>: {html.escape(row['kind'])} ({html.escape(row['class'])}), "
                 f"{total:,} parameters",
                 f"pre-trained on: {html.escape(card.pretrained_on or 'unknown')}",
                 f"reads: {html.escape(reads)}",
                 f"head: <code>{html.escape(name)}</code>, {html.escape(shape)}"
                 + ("" if name == "none" else " (new, random weights)" if head else " (pre-trained)")]
        self.card.value = "<br>".join(lines)
        self.groups.value = self.summary._repr_html_()
        self.compared.value = self.table._repr_html_()
        try:
            self.image.value = figure_png(plot_trainable(self.summary, title=f"{card.name}: parameters per group"))
            self.image.layout.display = None
        except Exception as err:  # the table is the result; a plot that fails must not hide it
            self.image.layout.display = "none"
            self.card.value += f"<div>(no plot: {html.escape(f'{type(err).__name__}: {err}')})</div>"
        self.say(f"{card.name}: {len(self.summary.rows)} layer groups, {total:,} parameters")
        return model


def model_kind(model: nn.Module) -> str:
    """In words: vision CNN, vision transformer, text encoder, or generative language model."""
    card = getattr(model, "ftkit_card", None)
    task = getattr(card, "task", "")
    if task == "causal-lm":
        return "generative language model (GPT-style)"
    if card is not None and card.input_size is None:
        return "text encoder (BERT-style)"
    attention = any(isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith(("Attention", "SelfAttention"))
                    for m in model.modules())
    if attention or hasattr(model, "pos_embed") or "vit" in type(model).__name__.lower():
        return "vision transformer (ViT)"
    return "vision CNN"


# --- helpers ------------------------------------------------------------------------------------
