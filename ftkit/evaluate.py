"""What a batch means, what the loss is, and how good a model is: evaluate, predict, lr_find.

The data contract. A batch is either a tuple ``(x, y)`` (images, tensors) or a dict
``{"input_ids", "attention_mask", "labels"}`` (text). ``forward_batch`` calls
``model(x)`` or ``model(**inputs)`` without the labels, and takes ``.logits`` from a
Hugging Face output, so every loss is computed here, in plain sight:

- classification: cross-entropy on the logits;
- regression: mean squared error on a one-output head (its last dimension squeezed);
- causal language modelling: next-token cross-entropy, logits at position t against
  the token at t + 1, ignoring label -100 (padding).

Example:
    >>> ft.evaluate(model, data.test)            # accuracy, macro F1, per-class report
    >>> ft.predict(model, data.test).names[:5]   # predicted class names
    >>> ft.lr_find(model, data.train).suggestion
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ._util import Table, release_memory
from .device import amp_dtype, autocast, pick_device, rng_state, set_rng_state, to_device

TASK_ALIASES = {"classification": "classification", "image-classification": "classification",
                "text-classification": "classification", "regression": "regression", "causal-lm": "causal-lm"}


def data_attr(data: Any, name: str, default: Any = None) -> Any:
    """An attribute of a dataset, looking through DataLoaders and Subsets (``.dataset``)."""
    for _ in range(8):
        if data is None:
            break
        if not isinstance(data, DataLoader) and hasattr(data, name):
            return getattr(data, name)
        data = getattr(data, "dataset", None)
    return default


def resolve_task(model: nn.Module, data: Any = None, task: str | None = None) -> str:
    """"classification", "regression" or "causal-lm": from ``task``, the model's card, the data, else classification."""
    card = getattr(model, "ftkit_card", None)
    task = task or getattr(card, "task", None) or data_attr(data, "task") or "classification"
    if task not in TASK_ALIASES:
        raise ValueError(f"Unknown task {task!r}; use one of {sorted(TASK_ALIASES)}.")
    return TASK_ALIASES[task]


def make_loader(data: Any, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                device: torch.device | None = None, num_workers: int = 0) -> DataLoader:
    """A DataLoader for a Dataset (a DataLoader passes through unchanged).

    Uses the dataset's own ``collate_fn`` when it has one (text datasets pad batches with
    it). A loader that does not shuffle gets a private generator, so iterating it never
    draws from torch's global random state (which dropout uses).
    """
    if isinstance(data, DataLoader):
        return data
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise TypeError(f"Expected a torch Dataset (with __getitem__ and __len__) or a DataLoader, "
                        f"got {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError("The dataset is empty; there is nothing to train or evaluate on.")
    pin = device is not None and device.type == "cuda"
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, pin_memory=pin,
                      collate_fn=data_attr(data, "collate_fn"),
                      generator=generator if shuffle else torch.Generator())


def forward_batch(model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the model on a batch; return (outputs, targets). Outputs are logits or values."""
    if isinstance(batch, dict):
        out = model(**{k: v for k, v in batch.items() if k != "labels"})
        targets = batch.get("labels")
    elif isinstance(batch, (tuple, list)):
        out = model(batch[0])
        targets = batch[1] if len(batch) > 1 else None
    else:
        out, targets = model(batch), None
    out = getattr(out, "logits", out)  # Hugging Face models return an output object
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out, targets


def compute_loss(task: str, outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The task's loss: cross-entropy, MSE, or next-token cross-entropy for a causal LM."""
    if targets is None:
        raise ValueError("The batch has no targets: expected (x, y) tuples or a dict with 'labels'.")
    if task == "regression":
        values = outputs.squeeze(-1) if outputs.dim() > 1 and outputs.shape[-1] == 1 else outputs
        return F.mse_loss(values, targets.reshape(values.shape).to(values.dtype), reduction=reduction)
    if task == "causal-lm":
        # Position t predicts token t + 1: drop the last prediction and the first label.
        logits, labels = outputs[:, :-1], targets[:, 1:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=-100, reduction=reduction)
    return F.cross_entropy(outputs, targets, reduction=reduction)


def count_items(task: str, targets: torch.Tensor) -> int:
    """What a mean loss averages over: examples, or predicted tokens for a causal LM."""
    if task == "causal-lm":
        return int((targets[:, 1:] != -100).sum())
    return len(targets)


@torch.no_grad()
def collect(model: nn.Module, loader, task: str, device: torch.device, dtype: torch.dtype | None = None,
            keep_outputs: bool = False) -> dict:
    """One pass in eval mode: summed loss, item count, predictions, targets (and outputs)."""
    was_training = model.training
    model.eval()
    loss_sum, items, preds, targets, outputs = 0.0, 0, [], [], []
    try:
        for batch in loader:
            batch = to_device(batch, device)
            with autocast(device, dtype):
                out, y = forward_batch(model, batch)
            if y is not None:
                loss_sum += float(compute_loss(task, out.float(), y, reduction="sum"))
                items += count_items(task, y)
                if task != "causal-lm":
                    targets.append(y.detach().cpu())
            if task == "classification":
                preds.append(out.argmax(-1).cpu())
            if keep_outputs or task == "regression":
                outputs.append(out.float().cpu())
    finally:
        model.train(was_training)
        out = batch = None  # the last batch's activations: free them, and hand the memory back
        release_memory()
    cat = lambda xs: torch.cat(xs) if xs else None
    return {"loss": loss_sum / items if items else float("nan"), "items": items, "preds": cat(preds),
            "targets": cat(targets), "outputs": cat(outputs)}


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
        >>> report = ft.evaluate(model, data.test)
        >>> report["accuracy"], report["confusion"]
    """
    dev = _model_device(model) if device is None else pick_device(device)
    task = resolve_task(model, data, task)
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
        >>> pred = ft.predict(model, data.test)
        >>> pred.labels[:5], pred.probs[:5].max(1).values, pred.names[:5]
    """
    dev = _model_device(model) if device is None else pick_device(device)
    task = resolve_task(model, data, task)
    if task == "causal-lm":
        raise ValueError("predict scores classification and regression models; for a causal language model "
                         "use model.generate(...) (Hugging Face) or ft.evaluate for the loss and perplexity.")
    run = collect(model, make_loader(data, batch_size, device=dev), task, dev, amp_dtype(dev), keep_outputs=True)
    outputs = run["outputs"]
    if task == "regression":
        return Predictions(outputs=outputs.squeeze(-1) if outputs.dim() > 1 else outputs)
    return Predictions(outputs=outputs, labels=outputs.argmax(-1), probs=outputs.softmax(-1),
                       classes=data_attr(data, "classes"))


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@dataclass
class LRFindResult:
    """The LR range test: learning rates tried, smoothed losses, and the suggested rate."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # exponentially smoothed, bias-corrected
    raw_losses: list[float] = field(default_factory=list)
    suggestion: float = float("nan")  # steepest descent of the smoothed loss (log-LR axis), before its minimum
    lr_min: float = float("nan")  # the LR of the lowest smoothed loss, divided by 10
    method: str = "steepest"

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return (f"LRFindResult({len(self.lrs)} steps, suggestion={self.suggestion:.2e} (steepest descent), "
                f"lr_min={self.lr_min:.2e} (minimum / 10))")


def lr_find(model: nn.Module, train: Any, *, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
            config=None, **overrides) -> LRFindResult:
    """The learning-rate range test (Smith 2015, "Cyclical Learning Rates", section 3.3; fastai's lr_find).

    Trains for up to ``num_steps`` mini-batches while the LR grows exponentially from
    ``start_lr`` to ``end_lr`` (the same LR for every group), and stops when the smoothed
    loss passes 4x its minimum. ``suggestion`` is the LR where the smoothed loss falls
    fastest (steepest negative slope against log LR) on the way down to its minimum
    (past it, the loss is diverging); ``lr_min`` is the LR of the
    minimum divided by 10; both are fastai's older suggestions. Afterwards the model is
    exactly as before: weights, buffers (BatchNorm statistics), ``requires_grad`` flags,
    train/eval modes, device, and torch's random state.

    Example:
        >>> found = ft.lr_find(model, data.train)
        >>> ft.fit(model, data.train, data.val, lr=found.suggestion)
    """
    from .optim import make_optimizer
    from .train import make_config, train_mode

    cfg = make_config(config, overrides)
    device = pick_device(cfg.device)
    task = resolve_task(model, train, cfg.task)
    params = dict(model.named_parameters())
    if not any(p.requires_grad for p in params.values()):
        raise ValueError("Every parameter is frozen, so there is nothing for lr_find to train. "
                         "Unfreeze what you will train first (e.g. ft.freeze(model) trains the head).")
    buffers = {(m, name): b for m in model.modules() for name, b in m._buffers.items() if b is not None}
    saved_params = {n: p.data.clone() for n, p in params.items()}
    saved_buffers = {k: b.clone() for k, b in buffers.items()}
    saved_flags = {n: p.requires_grad for n, p in params.items()}
    saved_modes = {m: m.training for m in model.modules()}
    saved_rng = rng_state()
    try:
        return _range_test(model, train, cfg, task, device, start_lr, end_lr, num_steps, make_optimizer, train_mode)
    finally:
        set_rng_state(saved_rng)
        for n, p in params.items():  # .data = the saved copy restores values, device and dtype exactly
            p.data = saved_params[n]
            p.grad = None
            p.requires_grad_(saved_flags[n])
        for (m, name), b in saved_buffers.items():
            m._buffers[name] = b
        for m, mode in saved_modes.items():
            m.training = mode


def _range_test(model, train, cfg, task, device, start_lr, end_lr, num_steps, make_optimizer, train_mode):
    from .device import prepare_model, seed_everything

    generator = seed_everything(cfg.seed)
    loader = make_loader(train, cfg.batch_size, shuffle=True, generator=generator, device=device,
                         num_workers=cfg.num_workers)
    prepare_model(model, device)
    optimizer = make_optimizer(model, cfg.optimizer, start_lr, cfg.weight_decay, None, cfg.momentum)
    dtype = amp_dtype(device, cfg.amp)
    train_mode(model)
    result, avg, best, beta = LRFindResult(), 0.0, math.inf, 0.98
    batches = iter(loader)
    for i in range(num_steps):
        lr = start_lr * (end_lr / start_lr) ** (i / max(1, num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            batch = next(batches)
        except StopIteration:  # go round the data again
            batches = iter(loader)
            batch = next(batches)
        batch = to_device(batch, device)
        with autocast(device, dtype):
            out, y = forward_batch(model, batch)
            loss = compute_loss(task, out, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        raw = loss.item()
        avg = beta * avg + (1 - beta) * raw  # exponential moving average, then bias correction
        smooth = avg / (1 - beta ** (i + 1))
        result.lrs.append(lr)
        result.raw_losses.append(raw)
        result.losses.append(smooth)
        best = min(best, smooth)
        if not math.isfinite(smooth) or smooth > 4 * best:
            break
    result.suggestion, result.lr_min = suggest_lr(result.lrs, result.losses)
    return result


def suggest_lr(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steepest descent before the minimum, LR at the minimum / 10) of a smoothed LR-finder curve."""
    lrs_t, losses_t = torch.tensor(lrs, dtype=torch.float64), torch.tensor(losses, dtype=torch.float64)
    finite = torch.isfinite(losses_t)
    if finite.sum() < 3:
        return float("nan"), float("nan")
    lrs_t, losses_t = lrs_t[finite], losses_t[finite]
    lowest = int(losses_t.argmin())
    lr_min = float(lrs_t[lowest]) / 10
    if lowest < 2:
        return lr_min, lr_min
    # The steepest descent on the way down: past the minimum the loss is diverging, and a
    # drop there (noise, a lucky batch) is no rate to train at.
    slope = torch.gradient(losses_t[:lowest + 1], spacing=(lrs_t[:lowest + 1].log10(),))[0]
    return float(lrs_t[int(slope.argmin())]), lr_min
