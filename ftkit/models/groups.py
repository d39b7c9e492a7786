"""Layer groups: a model's parameters split into ordered groups, from input to output.

Fine-tuning treats a network as a stack: the stem or embeddings learned the most
generic features, the last blocks the most task-specific ones, and the head is new.
Freezing (``freeze_to``), discriminative learning rates (``lr=slice(lo, hi)``, after
ULMFiT, Howard & Ruder 2018) and gradual unfreezing all act on these groups, as
fastai's "splitters" and timm's ``group_matcher`` do.

How groups are found, in order:
1. a catalogue model's card lists (group, regex) rules;
2. a model with a ``nn.ModuleList`` of repeated blocks (every transformer) gets
   embeddings, one group per block, the final layers, and the head;
3. any other module: one group per top-level child that has parameters.

Every parameter lands in exactly one group (tied weights are counted once).

Example:
    >>> for g in ft.layer_groups(model):  # doctest: +SKIP
    ...     print(g.name, g.numel)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

_HF_HEADS = ("classifier", "score", "lm_head", "qa_outputs", "head", "fc", "heads.head")
# New layers some Hugging Face task models put before the output layer, as direct children of the
# model: DistilBERT's pre_classifier, DeBERTa's pooler, XLNet's sequence_summary. They start random,
# like the output layer, so they belong to the head.
_HF_HEAD_EXTRAS = ("pre_classifier", "pooler", "sequence_summary")


@dataclass
class LayerGroup:
    """One group of parameters: its name, the parameter names and the parameters themselves."""

    name: str
    names: list[str] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params)

    @property
    def trainable(self) -> int:
        return sum(p.numel() for p in self.params if p.requires_grad)

    def __repr__(self) -> str:
        return f"LayerGroup({self.name!r}, {len(self.params)} tensors, {self.numel:,} params, {self.trainable:,} trainable)"


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The model's parameters in groups ordered from input to output; the head is last.

    Example:
        >>> groups = ft.layer_groups(ft.load_model("resnet18", num_classes=10))  # doctest: +SKIP
        >>> [g.name for g in groups]  # doctest: +SKIP
        ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    """
    named = list(model.named_parameters())  # deduplicates tied weights
    if not named:
        raise ValueError(f"{type(model).__name__} has no parameters, so it has no layer groups.")
    card = getattr(model, "ftkit_card", None)
    if card is not None and card.groups:
        groups = _by_rules(named, card.groups, card.name)
    else:
        groups = _by_blocks(model, named) or _by_children(model, named)
    return [g for g in groups if g.params]


def group_of(model: nn.Module) -> dict[str, int]:
    """Map each parameter name to the index of its layer group."""
    return {name: i for i, g in enumerate(layer_groups(model)) for name in g.names}


def head_name(model: nn.Module, card=None) -> str:
    """The dotted name of the model's output layer (the one ``replace_head`` swaps)."""
    card = card if card is not None else getattr(model, "ftkit_card", None)
    if card is not None and card.head:
        return card.head
    modules = dict(model.named_modules())
    if hasattr(model, "config"):  # a transformers model: its heads have conventional names
        for name in _HF_HEADS:
            module = modules.get(name)
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                return name
            if isinstance(module, nn.Module) and hasattr(module, "out_proj"):  # RoBERTa-style head
                return f"{name}.out_proj"
        raise ValueError(f"{type(model).__name__} has no output layer to replace (it is a bare encoder). "
                         "Load it with num_classes, e.g. ft.load_model(name, num_classes=5).")
    last = None
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = name
    if last is None:
        raise ValueError(f"Could not find an output layer (nn.Linear or nn.Conv2d) in {type(model).__name__}.")
    return last


def head_modules(model: nn.Module, card=None) -> tuple[str, ...]:
    """The dotted names of the modules that make up the head: the output layer and any new layers before it.

    For most models this is the output layer alone (``head_name``). A Hugging Face
    classifier's head is the whole top-level module holding its output layer (RoBERTa's
    ``classifier`` holds ``dense`` and ``out_proj``), plus the new layers some models put
    before it (DistilBERT's ``pre_classifier``, DeBERTa's ``pooler``). All of them start
    random when the task model is made from a pre-trained base model, so they are one group.

    Example:
        >>> ft.models.groups.head_modules(distilbert_classifier)  # doctest: +SKIP
        ('pre_classifier', 'classifier')
    """
    output = head_name(model, card)
    if not hasattr(model, "config"):
        return (output,)
    children = dict(model.named_children())
    extras = tuple(name for name in _HF_HEAD_EXTRAS
                   if name in children and any(True for _ in children[name].parameters()))
    return (*extras, output.split(".")[0])


def _by_rules(named, rules, model_name: str) -> list[LayerGroup]:
    groups = [LayerGroup(name) for name, _ in rules]
    compiled = [re.compile(rx) for _, rx in rules]
    for pname, p in named:
        for group, rx in zip(groups, compiled):
            if rx.match(pname):
                group.names.append(pname)
                group.params.append(p)
                break
        else:
            raise ValueError(f"Parameter {pname!r} of {model_name!r} matches none of its card's layer-group "
                             "rules; every parameter must belong to a group. Fix the card's `groups`.")
    return groups


def find_blocks(model: nn.Module) -> str | None:
    """The name of the largest ModuleList of parameterised blocks (transformer layers), if any."""
    best, size = None, 1
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList):
            with_params = [m for m in module if any(True for _ in m.parameters())]
            if len(with_params) > size:
                best, size = name, len(with_params)
    return best


def _by_blocks(model: nn.Module, named) -> list[LayerGroup] | None:
    blocks = find_blocks(model)
    if blocks is None:
        return None
    try:
        heads = tuple(name + "." for name in head_modules(model))
    except ValueError:
        heads = ()
    # A weight tied to the head (a language model's output embedding) belongs to the head under any of its names.
    aliases: dict[int, list[str]] = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(pname)
    prefix = blocks + "."
    first = LayerGroup("embeddings")
    per_block: dict[str, LayerGroup] = {}
    last = LayerGroup("final")
    head_group = LayerGroup("head")
    for pname, p in named:
        if heads and any(alias.startswith(heads) for alias in aliases[id(p)]):
            group = head_group
        elif pname.startswith(prefix):
            index = pname[len(prefix):].split(".", 1)[0]
            group = per_block.setdefault(index, LayerGroup(f"block{index}"))
        elif per_block:
            group = last
        else:
            group = first
        group.names.append(pname)
        group.params.append(p)
    return [first, *per_block.values(), last, head_group]


def _by_children(model: nn.Module, named) -> list[LayerGroup]:
    groups: dict[str, LayerGroup] = {}
    for pname, p in named:
        child = pname.split(".", 1)[0] if "." in pname else "(root)"
        group = groups.setdefault(child, LayerGroup(child))
        group.names.append(pname)
        group.params.append(p)
    order = [name for name, _ in model.named_children()]
    # Parameters registered on the model itself (no child) come first: they are usually embeddings.
    return sorted(groups.values(), key=lambda g: -1 if g.name == "(root)" else order.index(g.name))
