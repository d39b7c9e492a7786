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
    >>> history = ft.fit(model, data.train, data.val, epochs=3, callbacks=[view])
"""
from __future__ import annotations

import html
import math
import time

from .history import History


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
            if self._start is None or (len(history.steps) <= 1 and not history.epochs):  # a run just started
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
    from .plots import figure_png, plot_history

    return figure_png(plot_history(history))


# --- running panels: Run and Stop buttons, messages, checked values --------------------------


class Stopper:
    """A fit callback that stops training cleanly once ``event`` is set (the Stop button sets it).

    It raises KeyboardInterrupt after the next optimizer step; ``fit`` treats that as
    Ctrl-C: the model keeps its last completed epoch and the History says ``interrupted``.
    """

    def __init__(self, event):
        self.event = event

    def on_step(self, history: History, model=None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt("stopped with the Stop button")

    def on_epoch_end(self, epoch: int, history: History, model=None) -> None:
        self.on_step(history, model)


class Panel:
    """What every ftkit panel shares: ``controls``, a Run and a Stop button, a message line.

    ``panel.run(**values)`` sets controls (checked first), runs with the current values in
    the caller's thread and returns the result; a lesson calls it so that it runs with no
    clicks. Invalid values and errors never escape into the notebook: they are shown in
    the message line (``panel.error`` keeps the text) and ``run`` returns None.

    The Run button runs the same ``run`` in a background thread (``threaded = True``). Why:
    a Jupyter kernel handles widget events one at a time, so while a click handler trains,
    the Stop click waits in the queue until training ends. In a thread, the kernel stays
    free: the Stop button works, other cells run, and the live view updates by setting
    widget values, which is safe from a thread. ``panel.wait()`` waits for that run.
    While ``panel.run()`` itself runs in a cell, interrupt the kernel (the square button)
    instead: ``fit`` treats that as a clean stop too.
    """

    threaded = True  # the Run button trains in a background thread (see above)

    def __init__(self):
        import threading

        import ipywidgets as widgets

        self.controls: dict = {}
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.message = widgets.HTML()
        self.error: str | None = None  # the last error shown, as text
        self.exception: BaseException | None = None  # and the exception behind it, for debugging
        self.result = None  # what the last run returned
        self._why_disabled: dict[str, str] = {}
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread = None
        self.run_button.on_click(self._clicked)
        self.stop_button.on_click(lambda _button: self.stop())

    # --- values -----------------------------------------------------------------------------

    @property
    def values(self) -> dict:
        """The controls' current values, by name."""
        return {name: w.value for name, w in self.controls.items()}

    def set(self, **values) -> bool:
        """Set controls by name, after checking every value; show what was wrong and return False if any is."""
        try:
            self._set(values)
        except (ValueError, TypeError) as err:
            self._fail(err)
            return False
        return True

    def _set(self, values: dict) -> None:
        from ._util import suggest

        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"There is no control {name!r}.{suggest(name, self.controls)} "
                                 f"The controls are: {', '.join(self.controls)}.")
            check_value(name, self.controls[name], value, self._why_disabled.get(name))
        for name, value in values.items():
            self.controls[name].value = tuple(value) if isinstance(value, list) else value

    # --- running ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._busy.locked()

    def run(self, **values):
        """Set ``values`` (checked), then run with the controls' values; return the result, or None on error."""
        if not self._busy.acquire(blocking=False):
            self.say("A run is in progress: press Stop, or wait for it to finish.", error=True)
            return None
        try:
            self._stop.clear()
            self.error = self.exception = None
            self.run_button.disabled, self.stop_button.disabled = True, False
            self._set(values)
            self.say("running...")
            self.result = self._run(self.values)
            return self.result
        except Exception as err:  # shown in the panel, never raised into the notebook
            self._fail(err)
            return None
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True
            self._busy.release()

    def stop(self) -> None:
        """Ask the current run to stop after its next training step (the Stop button)."""
        if self.running:
            self._stop.set()
            self.say("stopping after the current step...")

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stopper(self) -> Stopper:
        """A fit callback that raises KeyboardInterrupt once Stop is pressed."""
        return Stopper(self._stop)

    def wait(self, timeout: float | None = None):
        """Wait for a run started with the Run button; return its result."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def _clicked(self, _button=None) -> None:
        import threading

        if not self.threaded:
            self.run()
        elif self.running:
            self.say("A run is in progress: press Stop, or wait for it to finish.", error=True)
        else:
            self._thread = threading.Thread(target=self.run, name=f"ftkit-{type(self).__name__}", daemon=True)
            self._thread.start()

    def _run(self, values: dict):
        raise NotImplementedError

    # --- showing ----------------------------------------------------------------------------

    def say(self, text: str, *, error: bool = False) -> None:
        """Show one line under the buttons (red for an error)."""
        color = "#b00020" if error else "#555"
        self.message.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def _fail(self, err: BaseException) -> None:
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        if not isinstance(err, (ValueError, TypeError, KeyError)):  # not one of ftkit's messages for people
            text = f"{type(err).__name__}: {text}"
        self.error, self.exception = text, err
        self.say(text, error=True)

    def _ipython_display_(self, **kwargs):
        from IPython.display import display

        display(self.widget)


def check_value(name: str, widget, value, why_disabled: str | None = None) -> None:
    """Raise a ValueError for people if ``value`` does not fit the control ``widget``."""
    import ipywidgets as widgets

    if why_disabled:
        raise ValueError(f"{name} cannot be changed here: {why_disabled}.")
    if isinstance(widget, (widgets.FloatLogSlider, widgets.FloatSlider, widgets.IntSlider)):
        lo, hi = widget.min, widget.max
        if isinstance(widget, widgets.FloatLogSlider):
            lo, hi = widget.base ** lo, widget.base ** hi
        whole = isinstance(widget, widgets.IntSlider)
        ok_type = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
        if not ok_type or not lo <= value <= hi:
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{name} must be {kind} from {lo:g} to {hi:g}; got {value!r}.")
    elif isinstance(widget, widgets.Checkbox):
        if not isinstance(value, bool):
            raise ValueError(f"{name} is on or off (True or False); got {value!r}.")
    elif hasattr(widget, "options"):
        allowed = [o[1] if isinstance(o, tuple) else o for o in widget.options]
        chosen = list(value) if isinstance(widget, widgets.SelectMultiple) and isinstance(value, (list, tuple)) \
            else [value]
        bad = [v for v in chosen if v not in allowed]
        if bad or isinstance(widget, widgets.SelectMultiple) and not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be {'some of' if isinstance(widget, widgets.SelectMultiple) else 'one of'} "
                             f"{allowed}; got {value!r}.")
