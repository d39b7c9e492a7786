"""ftkit: fine-tuning pre-trained neural networks, for real, and lessons that teach it.

    import ftkit as ft
    model = ft.load_model("minilm-l6", num_classes=5)
    data = ft.load_dataset("bbc-news", model)
    ft.freeze(model)
    ft.trainable_summary(model)
"""
from .checkpoint import CheckpointError, checkpoint_info, load_checkpoint, load_weights, save_checkpoint
from .data import DataUnavailableError, LabeledDataset, Splits, few_shot
from .datasets import list_datasets, load_dataset, register_dataset
from .device import pick_device, seed_everything
from .doctor import doctor
from .evaluate import LRFindResult, Metrics, Predictions, evaluate, lr_find, predict
from .files import from_csv, from_folder
from .freeze import bn_mode, freeze, freeze_to, trainable_summary, unfreeze
from .glyphs import render_glyphs
from .groups import LayerGroup, head_name, layer_groups
from .history import History
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
from .optim import group_lrs, lr_factor, make_optimizer, make_scheduler, optimizer_summary, param_groups
from .train import TrainConfig, fit, train_mode
from .transforms import augmentation

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataUnavailableError",
    "History",
    "LabeledDataset",
    "LayerGroup",
    "LRFindResult",
    "Metrics",
    "ModelCard",
    "Predictions",
    "PretrainedUnavailableError",
    "Splits",
    "TrainConfig",
    "augmentation",
    "bn_mode",
    "checkpoint_info",
    "doctor",
    "evaluate",
    "few_shot",
    "fit",
    "freeze",
    "freeze_to",
    "from_csv",
    "from_folder",
    "get_card",
    "group_lrs",
    "head_name",
    "layer_groups",
    "list_datasets",
    "list_models",
    "load_checkpoint",
    "load_dataset",
    "load_model",
    "load_tokenizer",
    "load_weights",
    "lr_factor",
    "lr_find",
    "make_optimizer",
    "make_scheduler",
    "offline_models",
    "optimizer_summary",
    "param_groups",
    "pick_device",
    "predict",
    "register_dataset",
    "register_model",
    "render_glyphs",
    "replace_head",
    "resolve_card",
    "save_checkpoint",
    "seed_everything",
    "train_mode",
    "trainable_summary",
    "unfreeze",
]
