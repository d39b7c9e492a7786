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

import sys as _sys  # noqa: E402

# The front door: every public name, by layer (bottom first). See README "Architecture".
from .core import __version__  # noqa: E402, F401
from .core.device import pick_device, seed_everything  # noqa: E402
from .core.distributed import is_main_process  # noqa: E402
from .core.util import release_memory  # noqa: E402
from .core.errors import (CheckpointError, ConfigError, DataError, DataUnavailableError, DeviceMemoryError,  # noqa: E402
                          FtkitError, NonFiniteLossError, PretrainedUnavailableError, UnknownNameError)
from .core.history import History  # noqa: E402
from .core.schedules import lr_factor  # noqa: E402
from .models.cards import ModelCard  # noqa: E402
from .models.catalogue import (get_card, list_models, load_model, load_tokenizer, offline_models,  # noqa: E402
                               register_model, replace_head, resolve_card)
from .models.groups import LayerGroup, head_name, layer_groups  # noqa: E402
from .data.labeled import LabeledDataset, Splits, few_shot  # noqa: E402
from .data.catalogue import list_datasets, load_dataset, register_dataset  # noqa: E402
from .data.files import from_csv, from_folder  # noqa: E402
from .data.examples import example_data  # noqa: E402
from .data.glyphs import render_glyphs  # noqa: E402
from .data.transforms import augmentation, with_augmentation  # noqa: E402
from .tuning.freeze import bn_drift, bn_mode, freeze, freeze_to, train_mode, trainable_summary, unfreeze  # noqa: E402
from .tuning.regularize import (EWC, L1, L2SP, DropoutLinear, Rehearsal, add_dropout_before_head,  # noqa: E402
                                diagonal_fisher, set_dropout)
from .tuning.lora import (LoRAConfig, LoRAConv2d, LoRALinear, add_lora, load_adapter, lora_modules,  # noqa: E402
                          merge_lora, save_adapter, unmerge_lora)
from .tuning.adapt import (Adapter, SoftPrompt, WithAdapter, add_adapters, bitfit, from_peft,  # noqa: E402
                           prompt_tuning, to_peft)
from .viz.style import figure_png  # noqa: E402
from .viz.plots import (plot_bn_drift, plot_compare, plot_data_efficiency, plot_forgetting, plot_gap,  # noqa: E402
                        plot_history, plot_lr_schedules)
from .viz.model_plots import plot_confusion, plot_lr_find, plot_trainable, plot_weight_drift  # noqa: E402
from .viz.data_plots import plot_examples, plot_features  # noqa: E402
from .viz.live import LiveView  # noqa: E402
from .train.config import TrainConfig  # noqa: E402
from .train.loop import fit  # noqa: E402
from .train.optim import group_lrs, make_optimizer, make_scheduler, optimizer_summary, param_groups  # noqa: E402
from .train.checkpoint import (checkpoint_info, load_checkpoint, load_weights,  # noqa: E402
                               save_checkpoint)
from .train.export import Exported, export_model, load_exported  # noqa: E402
from .train.feature_cache import clear_feature_cache  # noqa: E402
from .train.evaluate import Metrics, Predictions, evaluate, predict  # noqa: E402
from .train.lr_find import LRFindResult, lr_find  # noqa: E402
from .train.batch_size import find_batch_size  # noqa: E402
from .experiments import strategies  # noqa: E402
from .experiments.strategies import Phase, Strategy, run_strategy, strategy_table  # noqa: E402
from .experiments.compare import compare, data_efficiency, sweep  # noqa: E402
from .experiments.results import ResultTable  # noqa: E402
from .experiments.analysis import (ForgettingMeter, forgetting, generalization_gap, linear_cka,  # noqa: E402
                                   representation_similarity, weight_drift)
from .experiments.features import Features, features, nearest_mean_accuracy  # noqa: E402
from .widgets.panels import FreezeExplorer, TrainPanel  # noqa: E402
from .widgets.boards import CompareBoard, LoRAExplorer, ModelPicker  # noqa: E402
from .course import check  # noqa: E402
from .course.lesson import Scenario, by_device, on_gpu, scenario, start_lesson  # noqa: E402
from .course.doctor import doctor  # noqa: E402
from . import zoo  # noqa: E402

# ``ft.strategies`` and ``ft.check`` are modules on the front door; these lines keep their short
# import paths working too (``from ftkit.strategies import full``, ``import ftkit.check.lesson03``).
_sys.modules[__name__ + ".strategies"] = strategies
_sys.modules[__name__ + ".check"] = check
for _lesson in [m for m in dir(check) if m.startswith("lesson")]:
    _sys.modules[f"{__name__}.check.{_lesson}"] = getattr(check, _lesson)
del _lesson

__all__ = [
    "DeviceMemoryError",
    "find_batch_size",
    "UnknownNameError",
    "NonFiniteLossError",
    "FtkitError",
    "DataError",
    "ConfigError",
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
    "Exported",
    "export_model",
    "example_data",
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
    "is_main_process",
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
    "load_exported",
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
    "release_memory",
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
