"""ftkit: fine-tuning pre-trained neural networks, for real, and lessons that teach it.

    import ftkit as ft
    model = ft.load_model("minilm-l6", num_classes=5)
    data = ft.load_dataset("bbc-news", model)
    ft.freeze(model)
    ft.trainable_summary(model)
"""
from .data import DataUnavailableError, LabeledDataset, Splits, few_shot
from .datasets import list_datasets, load_dataset, register_dataset
from .doctor import doctor
from .files import from_csv, from_folder
from .freeze import bn_mode, freeze, freeze_to, trainable_summary, unfreeze
from .glyphs import render_glyphs
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
    resolve_card,
)
from .transforms import augmentation

__version__ = "0.1.0"

__all__ = [
    "DataUnavailableError",
    "LabeledDataset",
    "LayerGroup",
    "ModelCard",
    "PretrainedUnavailableError",
    "Splits",
    "augmentation",
    "bn_mode",
    "doctor",
    "few_shot",
    "freeze",
    "freeze_to",
    "from_csv",
    "from_folder",
    "get_card",
    "head_name",
    "layer_groups",
    "list_datasets",
    "list_models",
    "load_dataset",
    "load_model",
    "load_tokenizer",
    "offline_models",
    "register_dataset",
    "register_model",
    "render_glyphs",
    "replace_head",
    "resolve_card",
    "trainable_summary",
    "unfreeze",
]
