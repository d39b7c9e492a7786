"""ftkit's model zoo: small pre-trained models shipped inside the package, and the recipes that made them.

| name | what | pre-trained on |
|---|---|---|
| ``glyph-resnet`` | small ResNet with BatchNorm, 1 x 32 x 32 images | 82 rendered characters, digits-like domain |
| ``glyph-vit`` | tiny Vision Transformer, 1 x 32 x 32 images | the same 82 rendered characters |
| ``bbc-gpt`` | tiny GPT-2 (Hugging Face ``GPT2LMHeadModel``), byte-level BPE | BBC News business, politics, tech |

Each model was made by a recipe in ``ftkit.zoo.recipes`` (``ftkit pretrain NAME``) from
data ftkit renders or ships, deterministically for a seed. The recipe writes the weights
(safetensors) and a JSON card next to them in this folder: data, steps, seed, metrics, wall
time (``zoo_info(name)``). ``ft.load_model(name)`` loads them like any other model, through
the loader in ``ftkit.models.zoo``; the source tasks are made by ``ftkit.data.zoo_tasks``.

This package is the top layer of ftkit besides the command line: its recipes train with
``fit`` and measure transfer with it. Nothing below imports it.

Example:
    >>> import ftkit as ft
    >>> model = ft.load_model("glyph-resnet", num_classes=10)     # new 10-class head
    >>> source = ft.zoo.source_split("glyph-resnet")              # the pre-training task, held-out renders
    >>> gpt = ft.load_model("bbc-gpt")
    >>> sport = ft.zoo.text_splits(["sports"], gpt)               # a new domain for the GPT
"""
from __future__ import annotations

from ..data import zoo_tasks as tasks
from ..data.zoo_tasks import source_split, text_splits
from ..models.zoo import (
                          ZOO_CARDS,
                          ZOO_DIR,
                          ZOO_NAMES,
                          build,
                          card_path,
                          load_zoo,
                          weights_path,
                          zoo_available,
                          zoo_info,
)
from .transfer import digits_transfer

__all__ = ["ZOO_CARDS", "ZOO_DIR", "ZOO_NAMES", "build", "card_path", "digits_transfer", "load_zoo",
           "source_split", "tasks", "text_splits", "weights_path", "zoo_available", "zoo_info"]
