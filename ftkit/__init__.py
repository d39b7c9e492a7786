"""ftkit: fine-tuning pre-trained neural networks, for real, and lessons that teach it.

    import ftkit as ft
    model = ft.load_model("minilm-l6", num_classes=5)
    data = ft.load_dataset("bbc-news", model)
    ft.freeze(model)
    ft.trainable_summary(model)
"""
from . import strategies
from .adapt import Adapter, SoftPrompt, WithAdapter, add_adapters, bitfit, from_peft, prompt_tuning, to_peft
from .analysis import ForgettingMeter, forgetting, linear_cka, representation_similarity, weight_drift
from .boards import CompareBoard, LoRAExplorer
from .checkpoint import CheckpointError, checkpoint_info, load_checkpoint, load_weights, save_checkpoint
from .data import DataUnavailableError, LabeledDataset, Splits, few_shot
from .datasets import list_datasets, load_dataset, register_dataset
from .device import pick_device, seed_everything
from .doctor import doctor
from .experiments import compare, data_efficiency, sweep
from .evaluate import LRFindResult, Metrics, Predictions, evaluate, lr_find, predict
from .files import from_csv, from_folder
from .freeze import bn_mode, freeze, freeze_to, trainable_summary, unfreeze
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
    plot_compare,
    plot_confusion,
    plot_data_efficiency,
    plot_forgetting,
    plot_history,
    plot_lr_find,
    plot_trainable,
    plot_weight_drift,
)
from .optim import group_lrs, lr_factor, make_optimizer, make_scheduler, optimizer_summary, param_groups
from .regularize import EWC, L1, L2SP, DropoutLinear, Rehearsal, add_dropout_before_head, diagonal_fisher, set_dropout
from .results import ResultTable
from .strategies import Phase, Strategy, run_strategy, strategy_table
from .train import TrainConfig, fit, train_mode
from .transforms import augmentation
from .widgets import FreezeExplorer, TrainPanel

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "CheckpointError",
    "CompareBoard",
    "DataUnavailableError",
    "DropoutLinear",
    "EWC",
    "ForgettingMeter",
    "FreezeExplorer",
    "History",
    "L1",
    "L2SP",
    "LabeledDataset",
    "LayerGroup",
    "LiveView",
    "LoRAConfig",
    "LoRAConv2d",
    "LoRAExplorer",
    "LoRALinear",
    "LRFindResult",
    "Metrics",
    "ModelCard",
    "Phase",
    "Predictions",
    "PretrainedUnavailableError",
    "Rehearsal",
    "ResultTable",
    "SoftPrompt",
    "Splits",
    "Strategy",
    "TrainConfig",
    "TrainPanel",
    "WithAdapter",
    "add_adapters",
    "add_dropout_before_head",
    "add_lora",
    "augmentation",
    "bitfit",
    "bn_mode",
    "checkpoint_info",
    "compare",
    "data_efficiency",
    "diagonal_fisher",
    "doctor",
    "evaluate",
    "few_shot",
    "figure_png",
    "fit",
    "forgetting",
    "freeze",
    "freeze_to",
    "from_csv",
    "from_folder",
    "from_peft",
    "get_card",
    "group_lrs",
    "head_name",
    "layer_groups",
    "linear_cka",
    "list_datasets",
    "list_models",
    "load_adapter",
    "load_checkpoint",
    "load_dataset",
    "load_model",
    "load_tokenizer",
    "load_weights",
    "lora_modules",
    "lr_factor",
    "lr_find",
    "make_optimizer",
    "make_scheduler",
    "merge_lora",
    "offline_models",
    "optimizer_summary",
    "param_groups",
    "pick_device",
    "plot_compare",
    "plot_confusion",
    "plot_data_efficiency",
    "plot_forgetting",
    "plot_history",
    "plot_lr_find",
    "plot_trainable",
    "plot_weight_drift",
    "predict",
    "prompt_tuning",
    "register_dataset",
    "register_model",
    "render_glyphs",
    "replace_head",
    "representation_similarity",
    "resolve_card",
    "run_strategy",
    "save_adapter",
    "save_checkpoint",
    "seed_everything",
    "set_dropout",
    "strategies",
    "strategy_table",
    "sweep",
    "to_peft",
    "train_mode",
    "trainable_summary",
    "unfreeze",
    "unmerge_lora",
    "weight_drift",
]
