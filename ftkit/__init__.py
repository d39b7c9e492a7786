"""ftkit: fine-tuning pre-trained neural networks, for real, and lessons that teach it.

    import ftkit as ft
    model = ft.load_model("minilm-l6", num_classes=5)
    data = ft.load_dataset("bbc-news", model)
    ft.freeze(model)
    ft.trainable_summary(model)
"""
import os as _os

# OpenMP threads that wait for each other sleep instead of spinning. On a shared machine
# (Binder's 1-2 cores, a class's JupyterHub, a notebook beside other work) spinning threads
# fight the other processes for the cores: a measured fit took 58 s spinning, 6 s sleeping.
# It must be set before torch loads its OpenMP runtime; an explicit setting is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import check, strategies, zoo  # noqa: E402
from .adapt import Adapter, SoftPrompt, WithAdapter, add_adapters, bitfit, from_peft, prompt_tuning, to_peft
from .analysis import ForgettingMeter, forgetting, linear_cka, representation_similarity, weight_drift
from .boards import CompareBoard, LoRAExplorer, ModelPicker
from .course import Scenario, by_device, on_gpu, scenario, start_lesson
from .checkpoint import CheckpointError, checkpoint_info, load_checkpoint, load_weights, save_checkpoint
from .data import DataUnavailableError, LabeledDataset, Splits, few_shot
from .datasets import list_datasets, load_dataset, register_dataset
from .device import pick_device, seed_everything
from .doctor import doctor
from .feature_cache import clear_feature_cache
from .features import Features, features, nearest_mean_accuracy, plot_examples, plot_features
from .experiments import compare, data_efficiency, sweep
from .evaluate import LRFindResult, Metrics, Predictions, evaluate, lr_find, predict
from .files import from_csv, from_folder
from .freeze import bn_drift, bn_mode, freeze, freeze_to, trainable_summary, unfreeze
from .glyphs import render_glyphs
from .groups import LayerGroup, head_name, layer_groups
from .history import History
from .live import LiveView
from .cards import ModelCard, PretrainedUnavailableError
from .lora import (
    LoRAConfig,
    LoRAConv2d,
    LoRALinear,
    add_lora,
    load_adapter,
    lora_modules,
    merge_lora,
    save_adapter,
    unmerge_lora,
)
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
from .plots import (
    figure_png,
    plot_bn_drift,
    plot_compare,
    plot_confusion,
    plot_data_efficiency,
    plot_forgetting,
    plot_gap,
    plot_history,
    plot_lr_find,
    plot_lr_schedules,
    plot_trainable,
    plot_weight_drift,
)
from .optim import group_lrs, lr_factor, make_optimizer, make_scheduler, optimizer_summary, param_groups
from .regularize import (
    EWC,
    L1,
    L2SP,
    DropoutLinear,
    Rehearsal,
    add_dropout_before_head,
    diagonal_fisher,
    generalization_gap,
    set_dropout,
)
from .results import ResultTable
from .strategies import Phase, Strategy, run_strategy, strategy_table
from .train import TrainConfig, fit, train_mode
from .transforms import augmentation, with_augmentation
from .widgets import FreezeExplorer, TrainPanel

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "add_adapters",
    "add_dropout_before_head",
    "add_lora",
    "augmentation",
    "bitfit",
    "bn_drift",
    "bn_mode",
    "by_device",
    "check",
    "checkpoint_info",
    "CheckpointError",
    "clear_feature_cache",
    "compare",
    "CompareBoard",
    "data_efficiency",
    "DataUnavailableError",
    "diagonal_fisher",
    "doctor",
    "DropoutLinear",
    "evaluate",
    "EWC",
    "Features",
    "features",
    "few_shot",
    "figure_png",
    "fit",
    "forgetting",
    "ForgettingMeter",
    "freeze",
    "freeze_to",
    "FreezeExplorer",
    "from_csv",
    "from_folder",
    "from_peft",
    "generalization_gap",
    "get_card",
    "group_lrs",
    "head_name",
    "History",
    "L1",
    "L2SP",
    "LabeledDataset",
    "layer_groups",
    "LayerGroup",
    "linear_cka",
    "list_datasets",
    "list_models",
    "LiveView",
    "load_adapter",
    "load_checkpoint",
    "load_dataset",
    "load_model",
    "load_tokenizer",
    "load_weights",
    "lora_modules",
    "LoRAConfig",
    "LoRAConv2d",
    "LoRAExplorer",
    "LoRALinear",
    "lr_factor",
    "lr_find",
    "LRFindResult",
    "make_optimizer",
    "make_scheduler",
    "merge_lora",
    "Metrics",
    "ModelCard",
    "ModelPicker",
    "nearest_mean_accuracy",
    "offline_models",
    "on_gpu",
    "optimizer_summary",
    "param_groups",
    "Phase",
    "pick_device",
    "plot_bn_drift",
    "plot_compare",
    "plot_confusion",
    "plot_data_efficiency",
    "plot_examples",
    "plot_features",
    "plot_forgetting",
    "plot_gap",
    "plot_history",
    "plot_lr_find",
    "plot_lr_schedules",
    "plot_trainable",
    "plot_weight_drift",
    "predict",
    "Predictions",
    "PretrainedUnavailableError",
    "prompt_tuning",
    "register_dataset",
    "register_model",
    "Rehearsal",
    "render_glyphs",
    "replace_head",
    "representation_similarity",
    "resolve_card",
    "ResultTable",
    "run_strategy",
    "save_adapter",
    "save_checkpoint",
    "Scenario",
    "scenario",
    "seed_everything",
    "set_dropout",
    "SoftPrompt",
    "Splits",
    "start_lesson",
    "strategies",
    "Strategy",
    "strategy_table",
    "sweep",
    "to_peft",
    "train_mode",
    "trainable_summary",
    "TrainConfig",
    "TrainPanel",
    "unfreeze",
    "unmerge_lora",
    "weight_drift",
    "with_augmentation",
    "WithAdapter",
    "zoo",
]
