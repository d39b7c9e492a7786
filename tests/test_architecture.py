"""The package's layers, read from the source: no cycles, no upward imports, no borrowed privates.

ftkit is a stack of subpackages (README, "Architecture"). Every import in the source counts,
including those inside functions: a lazy import is still a dependency. The front door
(``ftkit/__init__.py``) and the command line (``ftkit/cli.py``) sit above everything.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import ftkit

PACKAGE = Path(ftkit.__file__).resolve().parent
# Bottom first: a layer may import the layers before it, never one after it.
LAYERS = ("core", "models", "data", "tuning", "viz", "train", "experiments", "widgets", "course", "zoo")
TOP = ("__init__", "cli")  # the front door and the command line may import any layer


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The absolute module an ``ImportFrom`` reads from, or None when it is not ftkit's."""
    if node.level == 0:
        name = node.module or ""
        return name if name == "ftkit" or name.startswith("ftkit.") else None
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports() -> list[tuple[str, str, str | None, int, str]]:
    """Every import of ftkit inside ftkit: (importing module, imported module, name or None, line, file)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module, is_package = _module_name(path), _is_package(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "ftkit" or alias.name.startswith("ftkit."):
                        found.append((module, alias.name, None, node.lineno, str(path)))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, is_package, node)
                if target is None:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if _exists(sub):  # ``from . import lesson00``: the module itself
                        found.append((module, sub, None, node.lineno, str(path)))
                    else:
                        found.append((module, target, alias.name, node.lineno, str(path)))
    return found


def layer(module: str) -> str:
    """The top-level part of ftkit a module belongs to: a layer's name, or '__init__' / 'cli'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _where(edge) -> str:
    source, target, name, line, path = edge
    return f"{Path(path).relative_to(PACKAGE.parent)}:{line} imports {target}{'.' + name if name else ''}"


def test_every_part_of_the_package_is_a_known_layer():
    entries = {p.stem for p in PACKAGE.iterdir() if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert entries == set(LAYERS) | set(TOP), (
        f"ftkit/ holds {sorted(entries)}; each entry is one of the layers {LAYERS} or {TOP}. "
        "A new module goes inside the layer it belongs to (README, Architecture).")


def test_no_layer_imports_a_layer_above_it_or_the_front_door():
    rank = {name: i for i, name in enumerate(LAYERS)}
    wrong = []
    for edge in imports():
        source, target = layer(edge[0]), layer(edge[1])
        if source in TOP or source == target:
            continue
        if target in TOP or rank[target] > rank[source]:
            wrong.append(_where(edge))
    assert not wrong, "Imports that point up the layers (or at the front door):\n" + "\n".join(wrong)


def test_the_layers_import_each_other_without_cycles():
    graph = defaultdict(set)
    for source, target, *_ in imports():
        if layer(source) not in TOP and layer(source) != layer(target):
            graph[layer(source)].add(layer(target))
    state: dict[str, int] = {}

    def cycle_from(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return trail + [node, nxt]
            if nxt not in state:
                found = cycle_from(nxt, trail + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = cycle_from(start, [])
            assert found is None, "A cycle between subpackages: " + " -> ".join(found)


def test_no_private_name_is_imported_across_layers():
    wrong = []
    for edge in imports():
        source, target, name = edge[0], edge[1], edge[2]
        if layer(source) == layer(target) or layer(source) == "__init__" and name == "__version__":
            continue
        private_module = any(part.startswith("_") and part != "__init__" for part in target.split("."))
        private_name = name is not None and name.startswith("_") and not name.startswith("__")
        if private_module or private_name:
            wrong.append(_where(edge))
    assert not wrong, "Private names used from another layer (make them public there, or move the code):\n" + \
        "\n".join(wrong)


@pytest.mark.parametrize("case", ["upward", "cycle", "private"])
def test_the_import_checks_catch_what_they_look_for(tmp_path, case, monkeypatch):
    # A small fake package with one fault, read by the same functions: each check must see it.
    root = tmp_path / "ftkit"
    for name in ("core", "models"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    body = {"upward": "from ..models import cards\n", "cycle": "from ..models.cards import X\n",
            "private": "from ..models.cards import _hidden\n"}[case]
    (root / "core" / "util.py").write_text(body)
    (root / "models" / "cards.py").write_text("from ..core.util import Y\n" if case == "cycle" else "X = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", root)
    checks = {"upward": test_no_layer_imports_a_layer_above_it_or_the_front_door,
              "cycle": test_the_layers_import_each_other_without_cycles,
              "private": test_no_private_name_is_imported_across_layers}
    with pytest.raises(AssertionError):
        checks[case]()


# The names the front door has offered since before the package was split into layers: each must stay.
FRONT_DOOR = """Adapter add_adapters add_dropout_before_head add_lora augmentation bitfit bn_drift bn_mode by_device check
checkpoint_info CheckpointError clear_feature_cache compare CompareBoard data_efficiency DataUnavailableError
diagonal_fisher doctor DropoutLinear evaluate EWC Features features few_shot figure_png fit forgetting ForgettingMeter
freeze freeze_to FreezeExplorer from_csv from_folder from_peft generalization_gap get_card group_lrs head_name History
L1 L2SP LabeledDataset layer_groups LayerGroup linear_cka list_datasets list_models LiveView load_adapter
load_checkpoint load_dataset load_model load_tokenizer load_weights lora_modules LoRAConfig LoRAConv2d LoRAExplorer
LoRALinear lr_factor lr_find LRFindResult make_optimizer make_scheduler merge_lora Metrics ModelCard ModelPicker
nearest_mean_accuracy offline_models on_gpu optimizer_summary param_groups Phase pick_device plot_bn_drift
plot_compare plot_confusion plot_data_efficiency plot_examples plot_features plot_forgetting plot_gap plot_history
plot_lr_find plot_lr_schedules plot_trainable plot_weight_drift predict Predictions PretrainedUnavailableError
prompt_tuning register_dataset register_model Rehearsal render_glyphs replace_head representation_similarity
resolve_card ResultTable run_strategy save_adapter save_checkpoint Scenario scenario seed_everything set_dropout
SoftPrompt Splits start_lesson strategies Strategy strategy_table sweep to_peft train_mode trainable_summary
TrainConfig TrainPanel unfreeze unmerge_lora weight_drift with_augmentation WithAdapter zoo""".split()


def test_every_front_door_name_is_still_there():
    assert len(FRONT_DOOR) == 126
    missing = [name for name in FRONT_DOOR if not hasattr(ftkit, name)]
    assert not missing and set(FRONT_DOOR) <= set(ftkit.__all__), missing
    assert not [name for name in ftkit.__all__ if not hasattr(ftkit, name)]


def test_the_short_module_paths_of_the_front_door_still_import():
    from ftkit.check.lesson03 import q1  # noqa: F401
    from ftkit.strategies import full, linear_probe  # noqa: F401

    assert ftkit.strategies.full is full and ftkit.check.lesson03.q1 is q1
