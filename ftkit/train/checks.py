"""Where a user's data meets a model: look before training, and say clearly what does not fit.

``check_data`` reads a few examples of a dataset (never its DataLoader, whose iterators draw
from the shuffling generator) and the model, and raises a ``DataError`` that says what was
wrong and what to do, before torch or transformers fail deep inside with a message about
tensor sizes. ``fit``, ``evaluate``, ``predict`` and ``lr_find`` call it first.

It catches: raw inputs (strings, PIL images) that were never prepared for the model; images
with the wrong number of channels; a text batch for an image model and the reverse; labels
of the wrong type for the task, or beyond the classes the head has.

Example:
    >>> check_data(model, data.train, "classification")      # nothing to say: returns None  # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..core.batches import data_attr, module_modes, restore_modes
from ..core.errors import DataError
from ..models.groups import head_name

SAMPLE = 256  # labels read to check their range, when the dataset does not list them all


def check_data(model: nn.Module, data: Any, task: str, where: str = "fit") -> None:
    """Raise a ``DataError`` when ``data``'s examples cannot go into ``model`` for ``task``; warn on a likely slip."""
    dataset = data.dataset if isinstance(data, DataLoader) else data
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        return  # an iterable dataset: nothing to peek at without consuming it
    if len(dataset) == 0:
        raise DataError(f"The dataset given to {where} is empty: there is nothing to train or score on. "
                        "Check the split (ft.few_shot with per_class > 0, a folder with images in it).")
    item = dataset[0]
    inputs, label = _split(item)
    _check_inputs(model, inputs, where)
    if label is not None and task in ("classification", "regression"):
        _check_labels(model, dataset, data, label, task, where)


def _split(item: Any) -> tuple[Any, Any]:
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k != "labels"}, item.get("labels")
    if isinstance(item, (tuple, list)):
        return item[0], item[1] if len(item) > 1 else None
    return item, None


def _check_inputs(model: nn.Module, inputs: Any, where: str) -> None:
    if isinstance(inputs, str):
        raise DataError(f"The inputs are raw texts (the first: {inputs[:50]!r}), but {where} needs them "
                        "tokenized for the model. Load the data for it: ft.load_dataset(name, model) (pass the "
                        "model or its name), or build a dataset that returns the tokenizer's output.")
    if type(inputs).__module__.startswith("PIL"):
        raise DataError(f"The inputs are PIL images, but {where} needs tensors prepared for the model (size, "
                        "channels, normalisation). Load them for it: ft.load_dataset(name, model) or "
                        "ft.from_folder(path, model).")
    text_model = _reads_tokens(model)
    if isinstance(inputs, dict):
        if "input_ids" in inputs and not text_model and _first_conv(model) is not None:
            raise DataError(f"The examples are tokenized texts (input_ids), but {type(model).__name__} reads "
                            "images. Use a text model (e.g. ft.load_model('minilm-l6', num_classes=...)), or "
                            "load image data for this one.")
        return
    if not torch.is_tensor(inputs):
        return
    if text_model and inputs.is_floating_point():
        raise DataError(f"The examples are float tensors of shape {tuple(inputs.shape)} (images?), but "
                        f"{type(model).__name__} is a language model that reads token ids. Use an image model, "
                        "or load text data for this one with ft.load_dataset(name, model).")
    expected = _channels(model)
    if expected is not None and inputs.dim() == 3 and inputs.shape[0] != expected:
        raise DataError(f"The images have {inputs.shape[0]} channel(s) (shape {tuple(inputs.shape)}), but the "
                        f"model's first layer expects {expected}. Load the data for this model, which converts "
                        "the channels (ft.load_dataset(name, model)), or convert them yourself "
                        f"({'x.expand(3, -1, -1)' if inputs.shape[0] == 1 else 'x.mean(0, keepdim=True)'}).")
    if inputs.dim() == 3 and inputs.is_floating_point():
        _check_image_size(model, inputs, where)


@torch.no_grad()
def _check_image_size(model: nn.Module, image: torch.Tensor, where: str) -> None:
    """Run the model once on one image, in eval mode: a size it cannot take fails here, in words.

    CNNs with global pooling take any size; a Vision Transformer's position embeddings fix
    its input size. Nothing changes: eval mode moves no statistics and draws no random numbers.
    """
    param = next(model.parameters(), None)
    modes = module_modes(model)
    model.eval()
    try:
        model(image.unsqueeze(0).to(param.device if param is not None else "cpu"))
    except (RuntimeError, ValueError, AssertionError) as err:
        card = getattr(model, "ftkit_card", None)
        size = f" ({card.input_size[1]} x {card.input_size[2]})" if card is not None and card.input_size else ""
        raise DataError(f"{type(model).__name__} cannot take images of {tuple(image.shape[1:])} pixels{size}: "
                        f"{str(err).splitlines()[0][:200]}. Load the data for this model, which resizes it "
                        "(ft.load_dataset(name, model)), or resize the images to the size the model was "
                        f"made for before {where}.") from err
    finally:
        restore_modes(modes)


def _check_labels(model: nn.Module, dataset: Any, data: Any, label: Any, task: str, where: str) -> None:
    value = label.item() if torch.is_tensor(label) and label.numel() == 1 else label
    if task == "regression" or not isinstance(value, (int, float, bool)) or isinstance(value, bool):
        return
    if isinstance(value, float) or (torch.is_tensor(label) and label.is_floating_point()):
        raise DataError(f"The labels are decimal numbers (the first: {value!r}), but a classification task "
                        "needs class indices, whole numbers from 0. For numbers to predict, use a regression "
                        "head: ft.load_model(name, num_classes=1, task='regression').")
    outputs = _head_outputs(model)
    if outputs is None:
        return
    labels = _labels(dataset)
    low, high = min(labels), max(labels)
    listed = getattr(dataset, "targets", None) is not None  # every label, not a sample
    if where == "fit" and listed and len(labels) > 1 and low == high:
        raise DataError(f"All {len(labels)} training examples have the same label ({low}): a classifier learns "
                        "nothing from one class. Check the split (ft.few_shot draws per class) or the label column.")
    if low < 0 or high >= outputs:
        raise DataError(f"The labels run from {low} to {high}, but the model's head has {outputs} outputs "
                        f"(classes 0 to {outputs - 1}). Give it a head with one output per class: "
                        f"ft.load_model(name, num_classes={high + 1}) or ft.replace_head(model, {high + 1}).")
    classes = data_attr(data, "classes")
    if where == "fit" and classes and len(classes) < outputs:
        warnings.warn(f"The data has {len(classes)} classes but the model's head has {outputs} outputs: the "
                      "extra outputs are never trained, yet predictions may pick them. For a new task, give "
                      f"the model a head of its own: ft.replace_head(model, {len(classes)}).", stacklevel=4)


def _labels(dataset: Any) -> list[int]:
    """Every label when the dataset lists them (``.targets``), else those of its first examples."""
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return [int(t) for t in targets]
    return [int(_split(dataset[i])[1]) for i in range(min(len(dataset), SAMPLE))]


def _head_outputs(model: nn.Module) -> int | None:
    try:
        head = model.get_submodule(head_name(model))
    except (ValueError, AttributeError):
        return None
    return getattr(head, "out_features", None) or getattr(head, "out_channels", None)


def _reads_tokens(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return config is not None and getattr(config, "vocab_size", None) is not None \
        and getattr(config, "num_channels", None) is None


def _first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def _channels(model: nn.Module) -> int | None:
    """How many image channels the model reads: its card's input size, else its first convolution's."""
    card = getattr(model, "ftkit_card", None)
    if card is not None and getattr(card, "input_size", None):
        return card.input_size[0]
    conv = _first_conv(model)
    return conv.in_channels if conv is not None else None
