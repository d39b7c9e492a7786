"""``LiveView``: watch a training run in a notebook, updated in place while ``fit`` runs.

One widget is displayed once: the latest numbers as HTML and the curves as a PNG image
(``ft.plot_history`` drawn by ``ft.figure_png``). Each update sets those two traits,
which is the fastest way to refresh a notebook output, and, unlike clearing and
re-printing an output area, leaves saved notebooks (and nbval) with one stable output.

Updates are throttled: at most one every ``every`` seconds (4 a second by default), and
never more often than keeps drawing under about a fifth of the run's time (a figure
takes 0.1-0.4 s to draw and encode on a small CPU). At the end of each epoch the
numbers (cheap) are always updated and the picture follows at the next allowed update;
when ``fit`` returns, both are always drawn, so the last picture is the finished run.

Outside a notebook (a script, a terminal, a test) a ``LiveView()`` does nothing, so a
training script can keep it in its callbacks.

Example:
    >>> view = ft.LiveView()
    >>> history = ft.fit(model, data.train, data.val, epochs=3, callbacks=[view])  # doctest: +SKIP
"""
from __future__ import annotations

import html
import math
import time

from ..core.history import History
from .plots import figure_png, plot_history


def in_notebook() -> bool:
    """True when running in a Jupyter kernel (JupyterLab, Notebook, Colab, VS Code), where widgets show."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveView:
    """Live numbers and curves of a ``fit`` run; pass it in ``callbacks``.

    Args:
        every: the shortest time between two updates, in seconds (epoch ends and the end
            of the run always update).
        display: ``None`` (default): show the view in the notebook at its first update,
            and do nothing at all outside a notebook. ``False``: keep the widgets updated
            but never display them (a panel shows ``view.widget`` inside its own layout).
            ``True``: display even where no notebook was detected.
        title: a line shown above the numbers.

    Attributes:
        widget: the ``VBox`` holding ``stats`` (an ``HTML``) and ``image`` (an ``Image``).
        renders: how many updates were drawn (the throttling keeps this small).
        history: the History of the run being shown.
    """

    def __init__(self, *, every: float = 0.25, display: bool | None = None, title: str = ""):
        if not every >= 0:
            raise ValueError(f"every is the shortest time between updates in seconds (>= 0); got {every!r}.")
        self.every, self.display, self.title = float(every), display, title
        self.history: History | None = None
        self.renders = 0
        self._widgets: tuple | None = None  # built on first use: ipywidgets 7 cannot make widgets without a kernel
        self._shown = False
        self._clock = time.monotonic  # replaceable in tests
        self._last = -math.inf  # when the last update was drawn
        self._cost = 0.0  # how long it took to draw, in seconds
        self._start: float | None = None  # when the run started (for the elapsed time)

    @property
    def widget(self):
        """The ``VBox`` to show: ``stats`` above ``image``."""
        return self._build()[0]

    @property
    def stats(self):
        """An ``HTML`` widget: progress, the latest loss and metrics, the run's state."""
        return self._build()[1]

    @property
    def image(self):
        """An ``Image`` widget: the learning curves as PNG (hidden until the first epoch ends)."""
        return self._build()[2]

    def _build(self) -> tuple:
        if self._widgets is None:
            import ipywidgets as widgets

            stats = widgets.HTML(value=_box(html.escape(self.title) or "waiting for training to start"))
            image = widgets.Image(format="png")
            image.layout.display = "none"  # until there is a picture: no empty frame
            self._widgets = (widgets.VBox([stats, image]), stats, image)
        return self._widgets

    @property
    def active(self) -> bool:
        """Whether updates are drawn: in a notebook, or whenever ``display`` was given."""
        return self.display is not None or in_notebook()

    # --- fit's callback methods ---------------------------------------------------------

    def on_step(self, history: History, model=None) -> None:
        self.update(history)

    def on_epoch_end(self, epoch: int, history: History, model=None) -> None:
        self.update(history, epoch_end=True)

    def on_fit_end(self, history: History, model=None) -> None:
        self.update(history, force=True, done=True)

    # --- drawing --------------------------------------------------------------------------

    def update(self, history: History, *, force: bool = False, done: bool = False, epoch_end: bool = False) -> bool:
        """Draw ``history`` now if the throttle allows it (or ``force``); return whether it drew.

        ``epoch_end``: if the picture must wait, update the numbers now anyway (they are cheap).
        """
        if not self.active:
            return False
        now = self._clock()
        if history is not self.history:  # another run (or phase, or the merged phases)
            if self._start is None or (history.step_count <= 1 and not history.epochs):  # a run just started
                self._start = now
            self.history, self._last = history, -math.inf
        if not force and now - self._last < max(self.every, 4 * self._cost):
            if epoch_end:
                self.stats.value = _box(stats_html(history, now - self._start, done, self.title))
            return False
        self._draw(history, now, done)
        self._last = self._clock()
        self._cost = self._last - now
        self.renders += 1
        if self.display is not False and not self._shown:
            self._shown = True
            from IPython.display import display

            display(self.widget)
        return True

    def reset(self, message: str = "") -> None:
        """Clear the picture and show ``message`` (panels call it before a new run)."""
        self.history, self._start = None, self._clock()
        self.stats.value = _box(html.escape(message or self.title))
        self.image.layout.display = "none"

    def _draw(self, history: History, now: float, done: bool) -> None:
        text = stats_html(history, now - self._start, done, self.title)
        try:
            png = _png(history)
        except Exception as err:  # a picture that fails to draw must never stop the training
            png, text = None, text + f"<br>(no curves: {html.escape(f'{type(err).__name__}: {err}')})"
        self.stats.value = _box(text)
        if png is not None:
            self.image.value = png
            self.image.layout.display = None  # shown (the Layout default)

    def _ipython_display_(self, **kwargs):
        from IPython.display import display

        self._shown = True
        display(self.widget)


def stats_html(history: History, elapsed: float, done: bool, title: str = "") -> str:
    """The numbers line of a live view: progress, the latest loss and metrics, the run's state."""
    info = history.info
    epochs = (info.get("config") or {}).get("epochs")
    per_epoch = info.get("steps_per_epoch")
    step = history.steps[-1] if history.steps else {}
    parts = []
    if step:
        parts.append(f"epoch {step['epoch']}/{epochs or '?'}")
        total = per_epoch * epochs if per_epoch and epochs else None
        parts.append(f"step {step['step']}/{total or '?'}")
        parts.append(f"loss {step['loss']:.4f}")
        if step.get("lr") is not None:
            parts.append(f"lr {step['lr']:.2e}")
    if history.epochs:
        last = history.epochs[-1]
        shown = [f"{k} {v:.4f}" for k, v in last.items()
                 if k.startswith(("train_", "val_")) and isinstance(v, float)]
        parts.append(f"after epoch {last['epoch']}: " + ", ".join(shown))
    parts.append(f"{elapsed:.1f} s")
    if done:
        state = "done"
        if history.interrupted:
            state = "interrupted: the model holds the last completed epoch"
        elif history.stopped_early:
            state = f"stopped early; best epoch {history.best_epoch}"
        parts.append(f"<b>{html.escape(state)}</b>")
    else:
        parts.append("training...")
    head = f"<b>{html.escape(title)}</b><br>" if title else ""
    return head + " &middot; ".join(parts)


def _box(inner: str) -> str:
    return f"<div style='font-family:monospace;font-size:12px'>{inner}</div>"


def _png(history: History) -> bytes | None:
    """The curves as PNG bytes, or None until the first epoch ends (``plot_history`` draws epochs)."""
    if not history.epochs:
        return None

    return figure_png(plot_history(history))


# --- running panels: Run and Stop buttons, messages, checked values --------------------------


