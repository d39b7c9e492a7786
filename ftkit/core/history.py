"""History: what happened during ``fit``, as plain lists and dicts.

Everything in a History is a number, a string, a list or a dict, never a tensor, so it
goes straight into ``json.dumps``, a pandas DataFrame or a checkpoint, and plots take it
as data (``ft.plot_history(history)``) rather than reaching into a trainer.

- ``history.steps``: one dict per optimizer step: ``step``, ``epoch``, ``loss`` (the data
  loss, averaged over accumulated micro-batches), ``lr`` (the head's learning rate) and
  ``penalty`` when regularizers are on.
- ``history.epochs``: one dict per epoch: ``train_loss``, ``val_loss``, ``val_accuracy``,
  ``val_f1`` ... plus ``time_s``, ``samples_per_s``, ``peak_memory_mb``, ``trainable``.
- ``history.info``: facts about the run: ``device``, ``path`` ("full" or
  "feature-cache") and why, ``task``, ``config``, ``interrupted``, ``stopped_early``.

Example:
    >>> history = ft.fit(model, data.train, data.val, epochs=3)  # doctest: +SKIP
    >>> history.to_table()          # one row per epoch  # doctest: +SKIP
    >>> history.best_epoch, history.metric("val_accuracy")  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math

from .errors import UnknownNameError
from .util import Table

_LOWER_IS_BETTER = ("loss", "mse", "mae", "perplexity", "error")


def monitor_mode(name: str) -> str:
    """"min" for losses and errors, "max" for scores such as accuracy and F1."""
    return "min" if name.endswith(_LOWER_IS_BETTER) else "max"


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Is ``value`` better than ``best`` by more than ``min_delta``? (The early-stopping test.)"""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


METRICS = {
    "classification": ["val_loss", "val_accuracy", "val_f1", "train_loss", "train_accuracy"],
    "regression": ["val_loss", "val_mse", "val_mae", "train_loss"],
    "causal-lm": ["val_loss", "val_perplexity", "train_loss"],
}


def check_monitor(monitor: str, task: str, has_val: bool, patience: int | None = None) -> None:
    """Fail early, and clearly, when early stopping cannot watch what it is told to."""
    if not has_val:
        if patience is not None:
            raise ValueError("Early stopping (patience=...) watches the validation data: pass val, "
                             "or leave patience out.")
        return
    if monitor not in METRICS[task]:
        raise ValueError(f"monitor={monitor!r} is not measured for a {task} task; choose one of {METRICS[task]}.")


class History:
    """Per-step and per-epoch records of a training run, plus facts about the run."""

    def __init__(self, steps: list[dict] | None = None, epochs: list[dict] | None = None,
                 info: dict | None = None):
        self._steps: list[dict] = list(steps or [])
        self._pending: list[dict] = []  # step records whose numbers are still tensors (on the GPU, say)
        self.epochs: list[dict] = list(epochs or [])
        self.info: dict = dict(info or {})

    # --- steps: recorded without waiting for the device, read as numbers -----------------

    def add_step(self, record: dict) -> None:
        """Append one step's record. Its values may be 0-d tensors (a loss still on the GPU): they
        become numbers the next time ``steps`` is read, all at once, so that training never waits
        for the device to report a step's loss unless someone looks at it."""
        self._steps.append(record)
        if any(hasattr(v, "detach") for v in record.values()):
            self._pending.append(record)

    @property
    def steps(self) -> list[dict]:
        """One dict per optimizer step (``step``, ``epoch``, ``loss``, ``lr`` ...), as numbers."""
        if self._pending:
            import torch

            slots = [(r, k) for r in self._pending for k, v in r.items() if hasattr(v, "detach")]
            values = torch.stack([r[k].detach().float().reshape(()) for r, k in slots]).tolist()  # one transfer
            for (record, key), value in zip(slots, values):
                record[key] = value
            self._pending = []
        return self._steps

    @steps.setter
    def steps(self, steps: list[dict]) -> None:
        self._steps, self._pending = list(steps), []

    @property
    def step_count(self) -> int:
        """How many steps are recorded (without turning pending tensors into numbers)."""
        return len(self._steps)

    # --- reading -----------------------------------------------------------------------

    def metric(self, name: str) -> list:
        """The per-epoch values of one metric, e.g. ``history.metric("val_loss")`` (None where missing)."""
        if self.epochs and not any(name in e for e in self.epochs):
            known = sorted({k for e in self.epochs for k in e})
            raise UnknownNameError(f"No epoch recorded {name!r}; the epochs have {known}.")
        return [e.get(name) for e in self.epochs]

    @property
    def best_epoch(self) -> int | None:
        """The epoch (counted from 1) with the best monitored value (``info["monitor"]``), or None."""
        monitor = self.info.get("monitor", "val_loss")
        mode = self.info.get("mode", monitor_mode(monitor))
        min_delta = self.info.get("min_delta", 0.0)
        best = best_epoch = None
        for record in self.epochs:
            if improved(record.get(monitor), best, mode, min_delta):
                best, best_epoch = record[monitor], record["epoch"]
        return best_epoch

    @property
    def interrupted(self) -> bool:
        """True when training stopped on KeyboardInterrupt (the model holds the last completed epoch)."""
        return bool(self.info.get("interrupted", False))

    @property
    def train_seconds(self) -> float:
        """Seconds spent training (sum of the epochs' ``time_s``; validation not included)."""
        return float(sum(e.get("time_s") or 0.0 for e in self.epochs))

    @property
    def stopped_early(self) -> bool:
        return bool(self.info.get("stopped_early", False))

    def __len__(self) -> int:
        return len(self.epochs)

    # --- showing -----------------------------------------------------------------------

    def to_table(self) -> Table:
        """One row per epoch; prints as text, renders as HTML in a notebook."""
        skip = {"lrs", "penalties"}
        rows = [{k: v for k, v in e.items() if k not in skip} for e in self.epochs]
        best = self.best_epoch
        facts = [f"device: {self.info.get('device', '?')}", f"path: {self.info.get('path', '?')}"]
        if best is not None:
            facts.append(f"best epoch: {best} ({self.info.get('monitor', 'val_loss')})")
        if self.interrupted:
            facts.append("interrupted: the model holds the last completed epoch")
        if self.stopped_early:
            facts.append("stopped early")
        return Table(rows, title="training history", footer="; ".join(facts))

    def __repr__(self) -> str:
        return str(self.to_table())

    def _repr_html_(self) -> str:
        return self.to_table()._repr_html_()

    # --- saving ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A deep copy as plain data, ready for ``json.dumps``."""
        return copy.deepcopy({"steps": self.steps, "epochs": self.epochs, "info": self.info})

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """The inverse of ``to_dict``."""
        missing = {"steps", "epochs", "info"} - set(data)
        if missing:
            raise ValueError(f"Not a History dict: missing {sorted(missing)}. Use the output of History.to_dict().")
        data = copy.deepcopy(data)
        return cls(data["steps"], data["epochs"], data["info"])
