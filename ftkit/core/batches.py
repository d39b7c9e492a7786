"""The batch rules: what a batch is, how a model runs on it, what the loss is and what it averages over.

Training (``fit``, ``lr_find``), evaluation and the regularisers that run the model (EWC's
Fisher, rehearsal) all read batches through these few functions, so the rules live in
one place.

The data contract. A batch is either a tuple ``(x, y)`` (images, tensors) or a dict
``{"input_ids", "attention_mask", "labels"}`` (text). ``forward_batch`` calls
``model(x)`` or ``model(**inputs)`` without the labels, and takes ``.logits`` from a
Hugging Face output, so every loss is computed here, in plain sight:

- classification: cross-entropy on the logits;
- regression: mean squared error on a one-output head (its last dimension squeezed);
- causal language modelling: next-token cross-entropy, logits at position t against
  the token at t + 1, ignoring label -100 (padding).

Example:
    >>> outputs, targets = forward_batch(model, next(iter(make_loader(data.train, 8))))  # doctest: +SKIP
    >>> compute_loss("classification", outputs, targets)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .errors import DataError

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
                device: torch.device | None = None, num_workers: int = 0, sampler: Any = None) -> DataLoader:
    """A DataLoader for a Dataset (a DataLoader passes through unchanged).

    Uses the dataset's own ``collate_fn`` when it has one (text datasets pad batches with
    it). A loader that does not shuffle gets a private generator, so iterating it never
    draws from torch's global random state (which dropout uses). A ``sampler`` (a
    ``DistributedSampler`` when several processes train) chooses the examples and their
    order instead of ``shuffle``.
    """
    if isinstance(data, DataLoader):
        return data
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise TypeError(f"Expected a torch Dataset (with __getitem__ and __len__) or a DataLoader, "
                        f"got {type(data).__name__}.")
    if len(data) == 0:
        raise DataError("The dataset is empty; there is nothing to train or evaluate on.")
    pin = device is not None and device.type == "cuda"
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=num_workers, pin_memory=pin, collate_fn=data_attr(data, "collate_fn"),
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


def count_items(task: str, targets: torch.Tensor) -> int | torch.Tensor:
    """What a mean loss averages over: examples, or predicted tokens for a causal LM.

    The token count is a 0-d tensor on the targets' device, so that counting never waits for
    the device; ``int()`` it where a number is needed.
    """
    if task == "causal-lm":
        return (targets[:, 1:] != -100).sum()
    return len(targets)


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def module_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Every module's train/eval mode, for ``restore_modes`` to put back after a pass in eval mode.

    ``model.train(was_training)`` would put every submodule into one mode, undoing a part
    that ``fit`` or the user had put in eval mode (a frozen backbone, a dropout switched off).

    Example:
        >>> modes = module_modes(model)  # doctest: +SKIP
        >>> model.eval()  # doctest: +SKIP
        >>> ...                          # score, collect features  # doctest: +SKIP
        >>> restore_modes(modes)  # doctest: +SKIP
    """
    return [(module, module.training) for module in model.modules()]


def restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    """Put every module back in the mode ``module_modes`` recorded."""
    for module, mode in modes:
        module.training = mode
