"""How good a model is: ``evaluate`` (metrics and a per-class report) and ``predict``.

Both run the model in eval mode without gradients, through the same batch rules as
training (``ftkit.core.batches``: what a batch is, the loss of each task), and leave the
model as it was. ``collect`` is the one pass they share with ``fit``'s validation.

Example:
    >>> ft.evaluate(model, data.test)            # accuracy, macro F1, per-class report  # doctest: +SKIP
    >>> ft.predict(model, data.test).names[:5]   # predicted class names  # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.batches import (
    compute_loss,
    count_items,
    data_attr,
    forward_batch,
    make_loader,
    model_device,
    module_modes,
    resolve_task,
    restore_modes,
)
from ..core.device import amp_dtype, autocast, pick_device, to_device
from ..core.util import Table, release_memory
from .checks import check_data


@torch.no_grad()
def collect(model: nn.Module, loader, task: str, device: torch.device, dtype: torch.dtype | None = None,
            keep_outputs: bool = False) -> dict:
    """One pass in eval mode: summed loss, item count, predictions, targets (and outputs).

    The sums and predictions stay on the device until the pass ends, then come back at once:
    no wait for the device after each batch.
    """
    modes = module_modes(model)
    model.eval()
    loss_sum, items, preds, targets, outputs = 0.0, 0, [], [], []
    try:
        for batch in loader:
            batch = to_device(batch, device)
            with autocast(device, dtype):
                out, y = forward_batch(model, batch)
            if y is not None:
                loss_sum = loss_sum + compute_loss(task, out.float(), y, reduction="sum").detach()
                items = items + count_items(task, y)
                if task != "causal-lm":
                    targets.append(y.detach())
            if task == "classification":
                preds.append(out.argmax(-1))
            if keep_outputs or task == "regression":
                outputs.append(out.detach().float().cpu())  # possibly large: not held on the device
    finally:
        restore_modes(modes)
        out = batch = None  # the last batch's activations: free them, and hand the memory back
        release_memory()
    cat = lambda xs: torch.cat(xs).cpu() if xs else None
    loss_sum, items = float(loss_sum), int(items)
    return {"loss": loss_sum / items if items else float("nan"), "loss_sum": loss_sum, "items": items,
            "preds": cat(preds), "targets": cat(targets), "outputs": cat(outputs)}


def metrics_from(task: str, run: dict, classes: list[str] | None = None, full: bool = False) -> dict:
    """Numbers from ``collect``: accuracy and macro F1, MSE and MAE, or perplexity."""
    out: dict = {"loss": run["loss"]}
    if task == "causal-lm":
        out["perplexity"] = math.exp(min(run["loss"], 50.0))
        return out
    y = run["targets"]
    if y is None:
        return out
    if task == "regression":
        values = run["outputs"].reshape(y.shape).float()
        out["mse"] = float(((values - y.float()) ** 2).mean())
        out["mae"] = float((values - y.float()).abs().mean())
        return out
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y, p = y.numpy(), run["preds"].numpy()
    out["accuracy"] = float((y == p).mean())
    # Macro averages weigh every class equally: a rare class counts as much as a common one.
    precision, recall, f1, _ = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    out["f1"] = float(f1)
    if full:
        n = max(len(classes or []), int(max(y.max(), p.max())) + 1)
        names = list(classes) if classes and len(classes) == n else [str(i) for i in range(n)]
        pc, rc, fc, support = precision_recall_fscore_support(y, p, labels=list(range(n)), zero_division=0)
        out.update(precision=float(precision), recall=float(recall), classes=names,
                   per_class=[{"class": c, "precision": float(a), "recall": float(b), "f1": float(d),
                               "support": int(s)} for c, a, b, d, s in zip(names, pc, rc, fc, support)],
                   confusion=confusion_matrix(y, p, labels=list(range(n))).tolist())
    return out


class Metrics(dict):
    """A plain dict of metrics that prints as a short report (per-class table included)."""

    def table(self) -> Table:
        """The per-class report (classification) or the numbers (other tasks) as a Table."""
        if "per_class" in self:
            return Table(self["per_class"], title="per-class report",
                         footer=f"accuracy {self['accuracy']:.4f}, macro F1 {self['f1']:.4f}")
        return Table([{k: v for k, v in self.items() if isinstance(v, (int, float))}], title="metrics")

    def __repr__(self) -> str:
        return str(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def evaluate(model: nn.Module, data: Any, *, batch_size: int = 64, device: str | None = None,
             task: str | None = None) -> Metrics:
    """Score a model on a dataset (or DataLoader), in eval mode, without changing it.

    Returns a dict: ``loss``; for classification ``accuracy``, macro ``precision``,
    ``recall``, ``f1``, ``per_class`` rows (named from ``data.classes``) and ``confusion``
    (rows = true class, columns = predicted); for regression ``mse`` and ``mae``; for a
    causal LM ``perplexity`` (exp of the mean next-token loss).

    Example:
        >>> report = ft.evaluate(model, data.test)  # doctest: +SKIP
        >>> report["accuracy"], report["confusion"]  # doctest: +SKIP
    """
    dev = model_device(model) if device is None else pick_device(device)
    task = resolve_task(model, data, task)
    check_data(model, data, task, "evaluate")
    run = collect(model, make_loader(data, batch_size, device=dev), task, dev, amp_dtype(dev))
    return Metrics(metrics_from(task, run, data_attr(data, "classes"), full=True))


@dataclass
class Predictions:
    """What ``predict`` returns: labels and probabilities (classification) and raw outputs."""

    outputs: torch.Tensor  # logits (classification) or values (regression), on the CPU
    labels: torch.Tensor | None = None  # the most probable class per example
    probs: torch.Tensor | None = None  # softmax probabilities, one row per example
    classes: list[str] | None = None  # class names from the dataset, when it has them

    @property
    def names(self) -> list[str]:
        """The predicted class names (or numbers as strings when the data has no names)."""
        if self.labels is None:
            raise ValueError("These are regression predictions; they have values (.outputs), not class names.")
        return [self.classes[i] if self.classes else str(i) for i in self.labels.tolist()]


def predict(model: nn.Module, data: Any, *, batch_size: int = 64, device: str | None = None,
            task: str | None = None) -> Predictions:
    """Predictions for every example, in order (eval mode, no gradients).

    Example:
        >>> pred = ft.predict(model, data.test)  # doctest: +SKIP
        >>> pred.labels[:5], pred.probs[:5].max(1).values, pred.names[:5]  # doctest: +SKIP
    """
    dev = model_device(model) if device is None else pick_device(device)
    task = resolve_task(model, data, task)
    check_data(model, data, task, "predict")
    if task == "causal-lm":
        raise ValueError("predict scores classification and regression models; for a causal language model "
                         "use model.generate(...) (Hugging Face) or ft.evaluate for the loss and perplexity.")
    run = collect(model, make_loader(data, batch_size, device=dev), task, dev, amp_dtype(dev), keep_outputs=True)
    outputs = run["outputs"]
    if task == "regression":
        return Predictions(outputs=outputs.squeeze(-1) if outputs.dim() > 1 else outputs)
    return Predictions(outputs=outputs, labels=outputs.argmax(-1), probs=outputs.softmax(-1),
                       classes=data_attr(data, "classes"))


