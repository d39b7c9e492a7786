"""ftkit: fine-tuning pre-trained neural networks, for real, and lessons that teach it.

    import ftkit as ft
    model = ft.load_model("minilm-l6", num_classes=5)
    data = ft.load_dataset("bbc-news", model)
    ft.freeze(model)
    ft.trainable_summary(model)
"""
from .doctor import doctor
from .freeze import bn_mode, freeze, freeze_to, trainable_summary, unfreeze
from .groups import LayerGroup, head_name, layer_groups
from .cards import ModelCard, PretrainedUnavailableError
from .models import (
    get_card,
    list_models,
    load_model,
    load_tokenizer,
    offline_models,
    register_model,
    replace_head,
)

__version__ = "0.1.0"

__all__ = [
    "LayerGroup",
    "ModelCard",
    "PretrainedUnavailableError",
    "bn_mode",
    "doctor",
    "freeze",
    "freeze_to",
    "get_card",
    "head_name",
    "layer_groups",
    "list_models",
    "load_model",
    "load_tokenizer",
    "offline_models",
    "register_model",
    "replace_head",
    "trainable_summary",
    "unfreeze",
]
