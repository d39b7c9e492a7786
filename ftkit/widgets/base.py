"""What every panel shares: the ``Panel`` base (controls, a Run button, a live view, messages),
a ``Stopper`` that a Stop button sets, and ``check_value`` for clear messages on bad input.

Example:
    >>> class MyPanel(Panel): ...          # see ftkit.widgets.panels for real ones
"""
from __future__ import annotations

import html

from ..core.history import History
from ..core.util import suggest


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
