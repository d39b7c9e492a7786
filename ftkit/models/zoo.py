"""The zoo's runtime loader: cards for ftkit's shipped models, their architectures and weights.

| name | what | pre-trained on |
|---|---|---|
| ``glyph-resnet`` | small ResNet with BatchNorm, 1 x 32 x 32 images | 82 rendered characters, digits-like domain |
| ``glyph-vit`` | tiny Vision Transformer, 1 x 32 x 32 images | the same 82 rendered characters |
| ``bbc-gpt`` | tiny GPT-2 (Hugging Face ``GPT2LMHeadModel``), byte-level BPE | BBC News business, politics, tech |

The weights and the JSON cards that record how they were made sit in the package folder
``ftkit/zoo/``, beside the recipes that made them (``ftkit.zoo.recipes``, ``ftkit pretrain
NAME``). Loading needs none of the recipes' code: this module only reads those files, so
``ft.load_model("glyph-resnet")`` sits at the bottom of the layers with every other source.

Example:
    >>> model = ft.load_model("glyph-resnet", num_classes=10)     # new 10-class head
    >>> ft.zoo.zoo_info("glyph-resnet")["metrics"]                # the recipe's record  # doctest: +SKIP
"""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ..core.errors import UnknownNameError
from . import nets
from .cards import ModelCard

# The shipped weights and cards live in the package folder ftkit/zoo/, beside the recipes that made them.
ZOO_DIR = Path(__file__).resolve().parent.parent / "zoo"
NUM_GLYPH_CLASSES = 82  # tasks.GLYPH_CHARS: 0-9, A-Z, a-z and 20 symbols
GLYPH_MEAN, GLYPH_STD = (0.38,), (0.34,)  # of the rendered source images (pixels in [0, 1])

# The ten digits are source classes: fine-tuning on real digits is sim-to-real transfer.
_GLYPH_SOURCE = "82 rendered characters (0-9, A-Z, a-z, symbols), digits-like 8x8 (ftkit zoo)"

ZOO_CARDS = (
    ModelCard(name="glyph-resnet", source="zoo", task="image-classification", arch="GlyphResNet", head="fc",
              groups=(("stem", r"stem\."), ("block1", r"block1\."), ("block2", r"block2\."),
                      ("block3", r"block3\."), ("head", r"fc\.")),
              input_size=(1, 32, 32), mean=GLYPH_MEAN, std=GLYPH_STD, pretrained_on=_GLYPH_SOURCE,
              params_m=0.71, license="MIT (ftkit)"),
    ModelCard(name="glyph-vit", source="zoo", task="image-classification", arch="GlyphViT", head="head",
              groups=(("embeddings", r"(cls_token|pos_embed|patch_embed\.)"),)
              + tuple((f"block{i}", rf"blocks\.{i}\.") for i in range(4)) + (("norm", r"norm\."), ("head", r"head\.")),
              input_size=(1, 32, 32), mean=GLYPH_MEAN, std=GLYPH_STD, pretrained_on=_GLYPH_SOURCE,
              params_m=0.14, license="MIT (ftkit)"),
    # A real Hugging Face folder inside the package, so the Hugging Face loader, its
    # tokenizer, generate() and peft all work on it unchanged.
    ModelCard(name="bbc-gpt", source="huggingface", task="causal-lm", arch=str(ZOO_DIR / "bbc-gpt"), max_length=256,
              pretrained_on="BBC News business, politics, tech articles (next token; ftkit zoo)",
              params_m=1.1, license="MIT (ftkit)"),
)
ZOO_NAMES = tuple(card.name for card in ZOO_CARDS)


def check_name(name: str) -> str:
    if name not in ZOO_NAMES:
        raise UnknownNameError(f"{name!r} is not a zoo model; the zoo has {', '.join(ZOO_NAMES)}.")
    return name


def weights_path(name: str, folder: str | Path | None = None) -> Path:
    """Where a zoo model's weights live: ``<name>.safetensors``, or the ``<name>/`` folder for the GPT."""
    folder = Path(folder) if folder is not None else ZOO_DIR
    return folder / (name if check_name(name) == "bbc-gpt" else f"{name}.safetensors")


def card_path(name: str, folder: str | Path | None = None) -> Path:
    """The JSON card the recipe wrote next to the weights: data, steps, seed, metrics, wall time."""
    return (Path(folder) if folder is not None else ZOO_DIR) / f"{check_name(name)}.json"


def zoo_info(name: str, folder: str | Path | None = None) -> dict:
    """The recipe's record of how a zoo model was made (its JSON card), as a dict.

    Example:
        >>> ft.zoo.zoo_info("glyph-resnet")["metrics"]["zero_shot_digits"]  # doctest: +SKIP
    """
    path = card_path(name, folder)
    if not path.is_file():
        raise FileNotFoundError(f"No card for {name!r} at {path}. Make it with: ftkit pretrain {name}")
    return json.loads(path.read_text())


def build(arch: str, num_classes: int = NUM_GLYPH_CLASSES) -> nn.Module:
    """A zoo vision architecture with random weights (``"GlyphResNet"`` or ``"GlyphViT"``)."""

    if arch not in ("GlyphResNet", "GlyphViT"):
        raise ValueError(f"Unknown zoo architecture {arch!r}; the zoo builds GlyphResNet and GlyphViT.")
    return getattr(nets, arch)(num_classes=num_classes)


def load_zoo(card: ModelCard, pretrained: bool) -> nn.Module:
    """The ``"zoo"`` source's loader: the architecture, with the shipped weights if ``pretrained``.

    ``card.num_outputs`` set (``load_model(name, num_classes=n)``) replaces the 82-class
    source head with a fresh one of that size.
    """
    model = build(card.arch)
    if pretrained:
        path = weights_path(card.name)
        if not path.is_file():  # an OSError: load_model turns it into a clear error
            raise FileNotFoundError(f"the zoo weights {path} are missing from this installation; "
                                    f"make them with: ftkit pretrain {card.name}")
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(path)))
    if card.num_outputs is not None:
        _fresh_head(model, card.head, card.num_outputs)
    return model


def _fresh_head(model: nn.Module, head: str, num_classes: int) -> None:
    old = model.get_submodule(head)
    model.set_submodule(head, nn.Linear(old.in_features, num_classes))


def zoo_available(card: ModelCard) -> bool:
    """Are the model's weights in this installation?"""
    return weights_path(card.name).is_file()


