"""What did fine-tuning do to the network? Forgetting, weight drift, representation similarity.

- ``forgetting``: the source task's accuracy before and after fine-tuning (catastrophic
  forgetting, McCloskey & Cohen 1989; French 1999). A fine-tuned classifier has a new
  head for the new classes, so its backbone is scored with the source model's head put
  back (on the model, for the measurement only). For a language model: perplexity on
  source text before and after.
- ``ForgettingMeter``: the same measurement after every epoch of ``fit``, written into the
  History as ``source_accuracy`` (or ``source_perplexity``): the forgetting meter.
- ``weight_drift``: per layer group, how far the weights moved, ``||w - w0|| / ||w0||``.
  LoRA updates are merged (on a copy) first, so they count as the weight change they are.
- ``representation_similarity``: per layer group, linear CKA between the two models'
  features on the same examples (Kornblith et al. 2019, "Similarity of Neural Network
  Representations Revisited"): 1 = the same features up to rotation and scale.

Example:
    >>> source = copy.deepcopy(model)  # doctest: +SKIP
    >>> meter = ft.ForgettingMeter(source, source_data.test)  # doctest: +SKIP
    >>> ft.replace_head(model, 10)  # doctest: +SKIP
    >>> history = ft.fit(model, target.train, target.val, callbacks=[meter])  # doctest: +SKIP
    >>> history.metric("source_accuracy"), ft.forgetting(source, model, source_data.test)  # doctest: +SKIP
    >>> ft.weight_drift(source, model)  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..core.batches import make_loader, model_device, module_modes, resolve_task, restore_modes
from ..core.device import to_device
from ..core.util import Table
from ..data.transforms import with_augmentation
from ..models.groups import head_name, layer_groups
from ..train.evaluate import collect, evaluate, metrics_from
from ..tuning.lora import lora_modules, merge_lora

HEADS = ("source", "own")


# --- forgetting ------------------------------------------------------------------------------


def forgetting(model_before: nn.Module, model_after: nn.Module, source_split: Any, *, head: str = "source",
               batch_size: int = 64) -> dict:
    """Source-task accuracy before and after fine-tuning, and the drop (or perplexity and its rise).

    Args:
        model_before: the source model, a copy taken before fine-tuning (``copy.deepcopy``).
        model_after: the fine-tuned model.
        source_split: examples of the source task, e.g. its test split.
        head: ``"source"`` (default) scores the fine-tuned backbone with the source model's
            head, for a model fine-tuned on new classes; ``"own"`` uses the fine-tuned model
            as it is, for the same classes in a new domain (e.g. rendered -> real digits).

    Returns:
        ``{"metric": "accuracy", "before", "after", "drop"}`` (drop = before - after), or for
        a causal language model ``{"metric": "perplexity", "before", "after", "rise"}``.

    Example:
        >>> ft.forgetting(source, model, glyphs.test)  # doctest: +SKIP
        {'metric': 'accuracy', 'before': 0.97, 'after': 0.41, 'drop': 0.56}
    """
    meter = ForgettingMeter(model_before, source_split, head=head, batch_size=batch_size)
    after = meter.measure(model_after)
    if meter.key == "source_perplexity":
        return {"metric": "perplexity", "before": meter.before, "after": after, "rise": after - meter.before}
    return {"metric": "accuracy", "before": meter.before, "after": after, "drop": meter.before - after}


class ForgettingMeter:
    """A ``fit`` callback that measures the source task after every epoch (``callbacks=[meter]``).

    Adds ``source_accuracy`` (or ``source_perplexity`` for a language model) to each epoch
    record of the History, and ``source_accuracy_before`` to ``history.info``. Keeps only
    the source model's head (a copy) and its score, not the whole source model.

    Example:
        >>> meter = ft.ForgettingMeter(source, glyphs.test)  # doctest: +SKIP
        >>> history = ft.fit(model, digits.train, digits.val, callbacks=[meter])  # doctest: +SKIP
        >>> history.metric("source_accuracy")  # doctest: +SKIP
    """

    def __init__(self, model_before: nn.Module, source_split: Any, *, head: str = "source", batch_size: int = 64):
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}: 'source' puts the source model's head on the "
                             f"fine-tuned backbone, 'own' keeps the fine-tuned head; got {head!r}.")
        self.data, self.batch_size = source_split, batch_size
        self.task = resolve_task(model_before, source_split)
        if self.task not in ("classification", "causal-lm"):
            raise ValueError(f"Forgetting is measured for classification (accuracy) and causal language models "
                             f"(perplexity); this source model's task is {self.task!r}.")
        self.key = "source_perplexity" if self.task == "causal-lm" else "source_accuracy"
        swap = head == "source" and self.task == "classification"
        self.source_head = copy.deepcopy(model_before.get_submodule(head_name(model_before))) if swap else None
        self.before = self._score(model_before)
        self.values: list[float] = []

    def measure(self, model: nn.Module) -> float:
        """The source score of ``model`` (with the source head put back on it, if so configured)."""
        with swapped_head(model, self.source_head):
            return self._score(model)

    def _score(self, model: nn.Module) -> float:
        device = model_device(model)
        run = collect(model, make_loader(self.data, self.batch_size, device=device), self.task, device)
        return metrics_from(self.task, run)["perplexity" if self.task == "causal-lm" else "accuracy"]

    def __call__(self, epoch: int, history, model: nn.Module) -> None:
        value = self.measure(model)
        self.values.append(value)
        history.info[f"{self.key}_before"] = self.before
        if history.epochs:
            history.epochs[-1][self.key] = value


@contextmanager
def swapped_head(model: nn.Module, head: nn.Module | None):
    """Temporarily put a copy of ``head`` in place of the model's head (``None``: change nothing).

    Example:
        >>> with swapped_head(model, source.fc):  # doctest: +SKIP
        ...     ft.evaluate(model, glyphs.test, task="classification")
    """
    if head is None:
        yield model
        return
    name = head_name(model)
    old = model.get_submodule(name)
    weight = next(old.parameters(), None)
    new = copy.deepcopy(head)
    if weight is not None:
        new.to(device=weight.device, dtype=weight.dtype)
    model.set_submodule(name, new)
    try:
        yield model
    finally:
        model.set_submodule(name, old)


# --- weight drift ------------------------------------------------------------------------------


def weight_drift(pretrained: nn.Module, finetuned: nn.Module) -> Table:
    """Per layer group of ``finetuned``: the relative change ``||w - w0|| / ||w0||`` from ``pretrained``.

    Parameters are matched by name (a LoRA or adapter wrapper's ``.base_layer`` is looked
    through, and LoRA is merged on a copy first). Parameters with no counterpart of the
    same shape, such as adapters or a head of another size, are counted as ``new params``.

    Example:
        >>> ft.weight_drift(source, model)      # which layers did fine-tuning move?  # doctest: +SKIP
    """
    start = {_plain(n): p for n, p in _merged(pretrained).named_parameters()}
    rows = []
    for group in layer_groups(_merged(finetuned)):
        change = norm = 0.0
        matched = new = 0
        for name, p in zip(group.names, group.params):
            w0 = start.get(_plain(name))
            if w0 is None or w0.shape != p.shape:
                new += p.numel()
                continue
            w, w0 = p.detach().double().cpu(), w0.detach().double().cpu()
            change += float((w - w0).pow(2).sum())
            norm += float(w0.pow(2).sum())
            matched += p.numel()
        drift = math.sqrt(change / norm) if norm > 0 else (0.0 if change == 0 else math.inf)
        rows.append({"group": group.name, "params": matched, "drift": drift if matched else None,
                     "abs_change": math.sqrt(change), "new params": new})
    moved = max((r for r in rows if r["drift"] is not None), key=lambda r: r["drift"], default=None)
    return Table(rows, title="weight drift per layer group: ||w - w0|| / ||w0||",
                 footer=f"moved most: {moved['group']} ({moved['drift']:.3g})" if moved else "")


def _merged(model: nn.Module) -> nn.Module:
    return merge_lora(copy.deepcopy(model)) if lora_modules(model) else model


def _plain(name: str) -> str:
    return name.replace(".base_layer.", ".")


# --- representation similarity ---------------------------------------------------------------------


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between two feature matrices with the same rows (examples): in [0, 1].

    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred features (Kornblith et al. 2019,
    eq. 5), computed with n x n Gram matrices. Invariant to rotations and isotropic scaling.

    Example:
        >>> linear_cka(torch.randn(100, 8), torch.randn(100, 8))    # small for unrelated features  # doctest: +SKIP
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares features of the same examples; got {x.shape[0]} and {y.shape[0]} rows.")
    x = x.double().flatten(1)
    y = y.double().flatten(1)
    x, y = x - x.mean(0), y - y.mean(0)
    k, l = x @ x.T, y @ y.T
    denominator = float(k.norm() * l.norm())
    return float((k * l).sum()) / denominator if denominator > 0 else math.nan


def representation_similarity(model_a: nn.Module, model_b: nn.Module, data: Any, max_examples: int = 256,
                              batch_size: int = 64) -> Table:
    """Per layer group: linear CKA between the two models' outputs of that group on the same examples.

    Each group is represented by one module's output: the smallest module that holds all
    of the group's parameters (a ResNet stage, a transformer block), or else the group's last
    layer. Outputs are mean-pooled over positions (image pixels, or tokens with the
    attention mask) to one vector per example. Groups are matched by name.

    Example:
        >>> ft.representation_similarity(source, model, glyphs.test)   # early layers stay near 1  # doctest: +SKIP
    """
    sites_a, sites_b = group_outputs(model_a), group_outputs(model_b)
    common = [g for g in sites_a if g in sites_b]
    if not common:
        raise ValueError(f"The two models share no layer-group names ({list(sites_a)} vs {list(sites_b)}).")
    feats_a = _features(model_a, {g: sites_a[g] for g in common}, data, max_examples, batch_size)
    feats_b = _features(model_b, {g: sites_b[g] for g in common}, data, max_examples, batch_size)
    rows = [{"group": g, "layer": sites_a[g] or "(model)", "features": feats_a[g].shape[1],
             "cka": linear_cka(feats_a[g], feats_b[g])} for g in common]
    return Table(rows, title="representation similarity per layer group (linear CKA)",
                 footer=f"{feats_a[common[0]].shape[0]} examples; 1 = same features up to rotation and scale")


def group_outputs(model: nn.Module) -> dict[str, str]:
    """For each layer group, the name of the module whose output represents it ("" = the model)."""
    modules = [n for n, _ in model.named_modules()]
    sites = {}
    for group in layer_groups(model):
        owners = [n.rpartition(".")[0] for n in group.names]
        parts = [o.split(".") if o else [] for o in owners]
        common = []
        for level in zip(*parts):
            if len(set(level)) > 1:
                break
            common.append(level[0])
        prefix = ".".join(common)
        inside = {f"{prefix}.{n}" for n, _ in model.get_submodule(prefix).named_parameters()} if prefix else None
        # The common ancestor represents the group only if it holds no other group's parameters.
        sites[group.name] = prefix if inside and inside <= set(group.names) else max(owners, key=modules.index)
    return sites


@torch.no_grad()
def _features(model: nn.Module, sites: dict[str, str], data: Any, max_examples: int,
              batch_size: int) -> dict[str, torch.Tensor]:
    device = model_device(model)
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for group, name in sites.items():
        module = model.get_submodule(name) if name else model
        hooks.append(module.register_forward_hook(
            lambda m, args, out, group=group: seen.__setitem__(group, _first_tensor(out))))
    out: dict[str, list[torch.Tensor]] = {g: [] for g in sites}
    modes, count = module_modes(model), 0
    model.eval()
    try:
        for batch in make_loader(data, batch_size, device=device):
            batch = to_device(batch, device)
            seen.clear()
            if isinstance(batch, dict):
                model(**{k: v for k, v in batch.items() if k != "labels"})
            else:
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
            take = min(max_examples - count, len(next(iter(seen.values()))))
            mask = batch.get("attention_mask") if isinstance(batch, dict) else None
            for g in sites:
                out[g].append(_pool(seen[g], mask)[:take].cpu())
            count += take
            if count >= max_examples:
                break
    finally:
        for hook in hooks:
            hook.remove()
        restore_modes(modes)
    return {g: torch.cat(v) for g, v in out.items()}


def _first_tensor(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):  # a Hugging Face ModelOutput
        out = list(out.values())
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"A layer group's module returned {type(out).__name__}, not a tensor.")


def _pool(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One vector per example: mean over image positions (N, C, H, W) or tokens (N, T, D)."""
    h = h.float()
    if h.dim() == 4:
        return h.mean(dim=(2, 3))
    if h.dim() == 3:
        if mask is not None and mask.shape == h.shape[:2]:
            m = mask.to(h.dtype).unsqueeze(-1)
            return (h * m).sum(1) / m.sum(1).clamp(min=1)
        return h.mean(1)
    return h.flatten(1)


def generalization_gap(model: nn.Module, train: Any, held_out: Any, *, batch_size: int = 64) -> dict[str, float]:
    """How much better the model does on its training examples than on examples it never saw.

    Both sets are scored the same way, after training, in eval mode (no dropout) and with
    augmentation switched off on ``train`` (an ftkit image dataset's presets), so the gap
    measures the model, not the noise added while training. Returns ``train_loss`` and
    ``held_out_loss`` and ``loss_gap`` (held-out minus train); for classification also
    ``train_accuracy``, ``held_out_accuracy`` and ``gap`` (train minus held-out accuracy).
    A large gap is overfitting (Zhang et al. 2017: a big network can fit even random
    labels, so a low training loss alone says little); ``held_out`` should be data that
    steered nothing, not the validation split early stopping watched.

    Example:
        >>> ft.generalization_gap(model, train, data.test)  # doctest: +SKIP
        {'train_loss': 0.004, 'held_out_loss': 0.25, 'loss_gap': 0.246, 'train_accuracy': 1.0, ...}
    """
    return gap_against(model, train, evaluate(model, held_out, batch_size=batch_size), batch_size=batch_size)


def gap_against(model: nn.Module, train: Any, unseen: dict, *, batch_size: int = 64) -> dict[str, float]:
    """``generalization_gap`` when the held-out data is already scored: ``unseen`` is its ``ft.evaluate`` report."""
    seen = evaluate(model, with_augmentation(train, "none"), batch_size=batch_size)
    out = {"train_loss": float(seen["loss"]), "held_out_loss": float(unseen["loss"])}
    out["loss_gap"] = out["held_out_loss"] - out["train_loss"]
    if "accuracy" in seen and "accuracy" in unseen:
        out.update(train_accuracy=float(seen["accuracy"]), held_out_accuracy=float(unseen["accuracy"]))
        out["gap"] = out["train_accuracy"] - out["held_out_accuracy"]
    return out
