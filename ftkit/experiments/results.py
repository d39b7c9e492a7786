"""Results of experiments: ``ResultTable`` and the on-disk cache of runs.

A run (one strategy, one seed, one training-set size) becomes a plain dict of numbers,
plus its History and its test report. ``compare`` and ``data_efficiency`` average runs
over seeds into the rows of a ``ResultTable``.

The cache keeps every run as a JSON file under ``cache_dir("results")``, named by a hash
of everything that determines the run: the recipe (``Strategy.cache_key()``), the model
(its card, or a factory's name or key), the data (name, options, split indices and
labels, transforms), the seed, the training-set size, the training settings, the source
task and the ftkit version. Files are written whole or not at all (``os.replace``).

Example:
    >>> result = ft.compare([ft.strategies.linear_probe(), ft.strategies.full()], model=name, data=data)  # doctest: +SKIP
    >>> result.best("accuracy"), result.per_seed(), result.history("full", seed=0)  # doctest: +SKIP
    >>> json.dumps(result.to_dict())  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
from pathlib import Path
from typing import Any, Sequence

import torch

from ..core import __version__
from ..core.device import pick_device
from ..core.errors import UnknownNameError
from ..core.history import History
from ..core.util import Table
from ..models.catalogue import resolve_card

SCORES = ("accuracy", "f1", "precision", "recall", "loss", "mse", "mae", "perplexity")  # taken from ft.evaluate
SHOWN = ("accuracy", "f1", "mse", "mae", "perplexity")  # averaged into the rows (loss: in the per-seed rows)
VALIDATION = ("val_accuracy", "val_loss", "val_perplexity")  # the scores to choose settings by
_LOWER_IS_BETTER = ("loss", "mse", "mae", "perplexity", "forgetting", "time_s", "peak_memory_mb", "trainable", "gap")
_NOT_IN_KEY = ("progress", "num_workers", "eval_batch_size")  # settings that do not change the results


class ResultTable(Table):
    """Rows of results (plain dicts) that print as a table; ``runs`` keeps every run and its History.

    - ``rows``: one per strategy (``compare``) or per (strategy, per_class) (``data_efficiency``),
      with the mean of each score and its standard deviation over seeds (``accuracy_std``);
    - ``runs``: one dict per run: the per-seed numbers, ``history`` (a History) and
      ``report`` (confusion matrix, class names, per-class scores on the test split).

    ``time_s`` is the wall time of training, validation included (and the source task's
    evaluation after each epoch when ``compare`` was given ``source``); ``peak_memory_mb``
    is CUDA's peak allocation on a GPU, the process's peak RSS on the CPU.
    """

    def __init__(self, rows: Sequence[dict], runs: Sequence[dict] = (), kind: str = "compare", title: str = "",
                 footer: str = ""):
        super().__init__(rows, title=title, footer=footer)
        self.runs = list(runs)
        self.kind = kind

    def best(self, metric: str = "accuracy", mode: str | None = None) -> dict:
        """The row with the best mean ``metric`` (highest; lowest for losses, errors, time, memory, forgetting)."""
        rows = [r for r in self.rows if isinstance(r.get(metric), (int, float))]
        if not rows:
            raise UnknownNameError(f"No row has a number for {metric!r}; the columns are {self.columns}.")
        mode = mode or ("min" if metric.endswith(_LOWER_IS_BETTER) else "max")
        return (min if mode == "min" else max)(rows, key=lambda r: r[metric])

    def per_seed(self) -> Table:
        """One row per run (strategy x seed x size): the numbers before averaging."""
        rows = [{k: v for k, v in run.items() if k not in ("history", "report")} for run in self.runs]
        return Table(rows, title=f"{self.title}: every run")

    def history(self, strategy: str, seed: int | None = None, per_class: Any = "any") -> History:
        """The History of one run (the first seed when ``seed`` is None)."""
        for run in self.runs:
            if run["strategy"] == strategy and seed in (None, run["seed"]) and per_class in ("any", run["per_class"]):
                return run["history"]
        known = sorted({r["strategy"] for r in self.runs})
        raise UnknownNameError(f"No run of {strategy!r} (seed={seed}, per_class={per_class}); strategies: {known}.")

    def to_dict(self) -> dict:
        """Plain data for ``json.dumps`` (Histories as dicts)."""
        runs = [dict(r, history=r["history"].to_dict()) if isinstance(r.get("history"), History) else dict(r)
                for r in self.runs]
        return copy.deepcopy({"kind": self.kind, "title": self.title, "footer": self.footer, "rows": self.rows,
                              "runs": runs})

    @classmethod
    def from_dict(cls, data: dict) -> "ResultTable":
        runs = [dict(r, history=History.from_dict(r["history"])) if isinstance(r.get("history"), dict) else dict(r)
                for r in data.get("runs", [])]
        return cls(data["rows"], runs, data.get("kind", "compare"), data.get("title", ""), data.get("footer", ""))

    def _display(self) -> Table:
        rows = []
        for row in self.rows:
            shown = {}
            for k, v in row.items():
                if k.endswith("_std"):
                    continue
                std = row.get(f"{k}_std")
                if isinstance(v, float) and isinstance(std, float):
                    shown[k] = f"{v:.3g} ± {std:.2g}"
                elif k == "per_class" and v is None:
                    shown[k] = "all"
                else:
                    shown[k] = v
            rows.append(shown)
        return Table(rows, title=self.title, footer=self.footer)

    def __str__(self) -> str:
        return str(self._display())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self._display()._repr_html_()


def validation_scores(history) -> dict:
    """The validation scores of the weights the run ended with, for choosing settings without the test split.

    Those of the last epoch, or of the restored one when early stopping put the best epoch's weights back.
    """
    epoch = history.info.get("restored_epoch")
    record = next((e for e in history.epochs if e["epoch"] == epoch), None) if epoch else None
    record = record or (history.epochs[-1] if history.epochs else {})
    return {m: float(record[m]) for m in VALIDATION if isinstance(record.get(m), (int, float))}


def summarise(runs: list[dict], by: tuple[str, ...]) -> list[dict]:
    """Runs grouped by ``by`` (strategy, and per_class): mean and std over seeds of each score, and the costs."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in by), []).append(run)
    for run in runs:  # runs cached before validation scores were recorded: read them from the History
        if "history" in run and not any(k.startswith("val_") for k in run):
            run.update(validation_scores(run["history"]))
    scores = [m for m in (*SHOWN, "train_accuracy", "gap", "forgetting", "source_accuracy", "source_perplexity",
                          *VALIDATION) if any(m in r for r in runs)]
    rows = []
    for key, group in groups.items():
        row = dict(zip(by, key))
        if "per_class" in by:
            row["train_size"] = group[0]["train_size"]
        for name in scores:  # every row has every column; None where undefined (forgetting from scratch)
            values = [r[name] for r in group if isinstance(r.get(name), (int, float))]
            row[name] = statistics.fmean(values) if values else None
            row[f"{name}_std"] = (statistics.stdev(values) if len(values) > 1 else 0.0) if values else None
        row.update(trainable=max(r["trainable"] for r in group), **{"trainable %": group[0]["trainable %"]},
                   time_s=round(statistics.fmean(r["time_s"] for r in group), 2),
                   samples_per_s=round(statistics.fmean(r["samples_per_s"] for r in group), 1),
                   peak_memory_mb=max(r["peak_memory_mb"] for r in group),
                   path=" / ".join(sorted({r["path"] for r in group})), seeds=len(group))
        rows.append(row)
    return rows


# --- the cache --------------------------------------------------------------------------------


def run_key(strategy, model, model_key, data, seed, per_class, base, source, new_head, weights=None) -> dict:
    settings = {k: v for k, v in base.to_dict().items() if k not in _NOT_IN_KEY}
    settings["device"] = pick_device(base.device).type
    return {"ftkit": __version__, "strategy": strategy.cache_key(),
            "model": dict(_model_identity(model, model_key), weights=weights),
            "data": _data_identity(data), "seed": seed, "per_class": per_class, "settings": settings,
            "source": _split_identity(source) if source is not None else None, "new_head": new_head}


def _model_identity(model, model_key: str | None) -> dict:
    if model_key:
        return {"key": model_key}
    if isinstance(model, str):
        card = resolve_card(model)
        return {"name": model, "card": {k: v for k, v in card.__dict__.items()}}
    name = getattr(model, "__qualname__", "")
    if not name or "<lambda>" in name or "<locals>" in name:
        raise ValueError("compare caches results by model, and this model function has no stable name "
                         f"({model!r}). Pass model_key='a name for it' (change it when the model changes), "
                         "or cache=False.")
    return {"function": f"{model.__module__}.{name}"}


def _data_identity(data) -> dict:
    return {"name": getattr(data, "name", None), "task": getattr(data, "task", None),
            "classes": list(getattr(data, "classes", []) or []), "info": getattr(data, "info", None),
            **{part: _split_identity(getattr(data, part)) for part in ("train", "val", "test")}}


def _split_identity(split) -> dict:
    """What tells two datasets apart: name, size, transform, the items' indices and labels."""
    out: dict = {"type": type(split).__name__, "size": len(split)}
    if hasattr(split, "name") and hasattr(split, "targets"):  # a LabeledDataset
        out["repr"] = repr(split)
    for name in ("indices", "targets"):
        values = getattr(split, name, None)
        if values is not None:
            out[name] = digest([v.tolist() if torch.is_tensor(v) else v for v in values])
    if hasattr(split, "tensors"):  # a TensorDataset
        out["tensors"] = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for t in split.tensors)).hexdigest()
    if hasattr(split, "dataset") and not isinstance(split, torch.utils.data.DataLoader):  # a Subset
        out["dataset"] = _split_identity(split.dataset)
    if len(out) == 2:
        raise ValueError(f"compare cannot tell this {type(split).__name__} apart from another of the same size in "
                         "its result cache. Use ftkit datasets (ft.load_dataset, ft.from_folder, ...) or a "
                         "TensorDataset, or pass cache=False.")
    return out


def digest(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def save_run(path: Path, key: dict, run: dict) -> None:
    """Write the run as JSON, atomically: a file is there completely or not at all."""
    record = {"format": 1, "key": key, "run": dict(run, history=run["history"].to_dict(), cached=True)}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, default=str))
    os.replace(tmp, path)


def load_run(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
        run = record["run"]
        run["history"] = History.from_dict(run["history"])
        return run
    except (OSError, ValueError, KeyError, TypeError):  # a damaged file: train again and overwrite it
        return None
