"""LoRA in one readable file: low-rank adapters on frozen Linear and Conv2d layers.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") freezes a
pre-trained weight ``W`` (out x in) and learns a low-rank change to it:

    y = W x + (alpha / r) * B (A x),      A: r x in,  B: out x r,  r << min(in, out)

``A`` starts random and ``B`` at zero, so at the start the model computes exactly what
the pre-trained model computed. Only ``A`` and ``B`` train: for a 384 x 384 attention
projection and r = 8, that is 6,144 numbers instead of 147,456. After training,
``B A`` can be folded into ``W`` (``merge_lora``), so inference costs nothing extra.

Design. ftkit's ``LoRALinear`` / ``LoRAConv2d`` wrap the frozen layer (``base_layer``) and
hold ``lora_A`` and ``lora_B`` with the names, initialisation (Kaiming-uniform A, zero B),
dropout and scaling of Hugging Face's ``peft``, so both compute the same function and
share a file format: ``save_adapter`` writes peft's adapter folder, ``load_adapter`` reads
one. ftkit does not train inside peft's ``PeftModel``: it forwards attributes to the
model it wraps and renames every parameter (``base_model.model...``), hiding the head and
layer groups from the rest of the kit. ``ft.to_peft`` / ``ft.from_peft`` convert.

Example:
    >>> model = ft.load_model("minilm-l6", num_classes=5)
    >>> ft.add_lora(model, r=8, alpha=16)       # query/key/value projections, head trains  # doctest: +SKIP
    >>> ft.trainable_summary(model)  # doctest: +SKIP
    >>> ft.fit(model, data.train, data.val, lr=1e-3)  # doctest: +SKIP
    >>> ft.save_adapter(model, "bbc-lora")      # a few hundred KB, loads in peft too  # doctest: +SKIP
    >>> ft.merge_lora(model)                    # a plain model again, same outputs  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import save_file
from torch import nn

from ..core.errors import ConfigError
from ..core.io import atomic_write
from ..models.groups import head_modules
from .freeze import apply_bn_modes

# Attention projections, by the names Hugging Face models give them: BERT/RoBERTa
# (query, key, value), LLaMA/OPT/BART (q_proj, ...), DistilBERT (q_lin, ...), GPT-2
# (c_attn, one fused Conv1D), timm ViT (qkv). Hu et al. adapt W_q and W_v; ftkit takes
# all three, a common choice that costs little more.
ATTENTION = r"(^|\.)(query|key|value|q_proj|k_proj|v_proj|q_lin|k_lin|v_lin|c_attn|qkv)$"
ADAPTER_FILE, CONFIG_FILE = "adapter_model.safetensors", "adapter_config.json"
_PREFIX = "base_model.model."  # peft's name for the model inside a PeftModel


@dataclass(frozen=True)
class LoRAConfig:
    """What ``add_lora`` was told (validated here, like peft's ``LoraConfig``)."""

    r: int = 8  # rank of the update B A: its size and capacity
    alpha: float = 16.0  # the update is scaled by alpha / r, so changing r keeps the update's size comparable
    dropout: float = 0.0  # dropout on the input of the low-rank path only (the frozen path is untouched)
    targets: str | tuple[str, ...] | None = None  # regex searched in module names, or module names; None: defaults
    train_head: bool | None = None  # also train the output layer; None: yes, except for language models

    def __post_init__(self):
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"LoRA rank r must be a whole number >= 1 (typical: 4 to 64); got {self.r!r}.")
        if not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be > 0 (the update is scaled by alpha / r); got {self.alpha!r}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA dropout is a probability in [0, 1); got {self.dropout!r}.")
        if isinstance(self.targets, (list, tuple)):
            object.__setattr__(self, "targets", tuple(self.targets))
        if isinstance(self.targets, str):
            try:
                re.compile(self.targets)
            except re.error as err:
                raise ValueError(f"targets={self.targets!r} is not a valid regular expression: {err}") from err


class LoRALayer(nn.Module):
    """A frozen layer plus a trainable low-rank update: ``base_layer(x) + scaling * B(A(dropout(x)))``."""

    def __init__(self, base_layer: nn.Module, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base_layer = base_layer
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A, self.lora_B = self._make_A_B(base_layer, r)
        weight = base_layer.weight
        self.lora_A.to(device=weight.device, dtype=weight.dtype)
        self.lora_B.to(device=weight.device, dtype=weight.dtype)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.merged = False  # True: B A is folded into base_layer.weight, and forward skips the low-rank path
        # A like nn.Linear's default init, B zero: the update B A starts at exactly zero (Hu et al., section 4.1).
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def _make_A_B(self, base_layer: nn.Module, r: int) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def delta_weight(self) -> torch.Tensor:
        """``scaling * B A`` shaped like ``base_layer.weight``: what merging adds to it."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.merged:
            return result
        low_rank = self.lora_B(self.lora_A(self.lora_dropout(x.to(self.lora_A.weight.dtype))))
        return (result + low_rank * self.scaling).to(result.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the frozen weight: same outputs, no extra cost per forward."""
        if not self.merged:
            self.base_layer.weight += self.delta_weight().to(self.base_layer.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of the frozen weight again (undoes ``merge`` up to float rounding)."""
        if self.merged:
            self.base_layer.weight -= self.delta_weight().to(self.base_layer.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}, merged={self.merged}"


class LoRALinear(LoRALayer):
    """LoRA on an ``nn.Linear`` (or a transformers ``Conv1D``, GPT-2's Linear with its weight transposed)."""

    def _make_A_B(self, base_layer, r):
        n_out, n_in = base_layer.weight.shape  # nn.Linear stores out x in ...
        if _is_conv1d(base_layer):
            n_in, n_out = n_out, n_in  # ... transformers' Conv1D in x out
        return nn.Linear(n_in, r, bias=False), nn.Linear(r, n_out, bias=False)

    def delta_weight(self) -> torch.Tensor:
        delta = (self.lora_B.weight @ self.lora_A.weight) * self.scaling  # out x in
        return delta.T if _is_conv1d(self.base_layer) else delta  # Conv1D stores in x out


class LoRAConv2d(LoRALayer):
    """LoRA on an ``nn.Conv2d``: A is a conv with the base's kernel and stride to r channels, B a 1x1 conv back."""

    def _make_A_B(self, base_layer, r):
        conv = base_layer
        a = nn.Conv2d(conv.in_channels, r, conv.kernel_size, conv.stride, conv.padding, bias=False)
        return a, nn.Conv2d(r, conv.out_channels, 1, bias=False)

    def delta_weight(self) -> torch.Tensor:
        # B is 1x1, so the composed kernel is B's matrix times A's kernel, channel by channel.
        b = self.lora_B.weight[:, :, 0, 0]  # out x r
        return torch.einsum("or,rikl->oikl", b, self.lora_A.weight) * self.scaling


def add_lora(model: nn.Module, r: int = 8, alpha: float = 16, dropout: float = 0.0,
             targets: str | Iterable[str] | None = None, train_head: bool | None = None) -> nn.Module:
    """Wrap the target layers in LoRA modules and freeze everything else (but the head); in place.

    Args:
        r, alpha, dropout: LoRA's rank, scale (the update is multiplied by alpha / r) and
            dropout on the low-rank path.
        targets: a regex searched in module names (``r"layer4"``, ``r"(query|value)$"``), or
            a list of module names (exact, or the end of a name after a dot, as in peft).
            Default: the attention projections of a transformer (query/key/value, q_proj/
            k_proj/v_proj, GPT-2's c_attn); for other models every ``nn.Linear`` and
            ``nn.Conv2d`` outside the head (grouped and dilated convolutions are skipped).
        train_head: the output layer trains too (a new head must learn); default True,
            False for language models (their head is pre-trained, and often tied to the
            input embeddings).

    Example:
        >>> ft.add_lora(model, r=8, targets=r"(query|value)$")  # doctest: +SKIP
        >>> ft.trainable_summary(model)      # about 1% of the parameters train  # doctest: +SKIP
    """
    config = LoRAConfig(r, float(alpha), dropout, targets, train_head)
    if lora_modules(model):
        raise ValueError("This model already has LoRA modules. Merge them first (ft.merge_lora(model)) "
                         "or start from a fresh model.")
    heads = _head(model)
    names = _target_names(model, config.targets, heads)
    for name in names:
        base = model.get_submodule(name)
        wrapper = LoRAConv2d if isinstance(base, nn.Conv2d) else LoRALinear
        model.set_submodule(name, wrapper(base, config.r, config.alpha, config.dropout))
    train_head = (not _is_language_model(model)) if config.train_head is None else config.train_head
    for pname, p in model.named_parameters():
        is_lora = ".lora_A." in pname or ".lora_B." in pname
        p.requires_grad_(is_lora or (train_head and pname.startswith(_prefixes(heads))))
    apply_bn_modes(model, None)  # BatchNorm layers whose weights are now frozen keep their statistics
    return model


def lora_modules(model: nn.Module) -> dict[str, LoRALayer]:
    """The model's LoRA modules by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALayer)}


def merge_lora(model: nn.Module, remove: bool = True) -> nn.Module:
    """Fold every LoRA update into its base weight, in place.

    ``remove=True`` (default) replaces each LoRA module by its base layer: a plain model
    with the base model's parameter names and count. ``remove=False`` keeps the modules,
    marked merged (their forward skips the low-rank path), so ``unmerge_lora`` can undo it.

    Example:
        >>> ft.merge_lora(model)  # doctest: +SKIP
        >>> ft.lora_modules(model)  # doctest: +SKIP
        {}
    """
    found = lora_modules(model)
    if not found:
        raise ValueError("This model has no LoRA modules to merge (add them with ft.add_lora).")
    for name, module in found.items():
        module.merge()
        if remove:
            model.set_submodule(name, module.base_layer)
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo ``merge_lora(model, remove=False)``: subtract each update again, so A and B train on."""
    for module in lora_modules(model).values():
        module.unmerge()
    return model


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save only the LoRA weights (and a trained head) to a folder, in peft's format; atomically.

    The folder gets ``adapter_model.safetensors`` and ``adapter_config.json``, which
    ``peft.PeftModel.from_pretrained(base_model, path)`` loads as well as ``ft.load_adapter``.

    Example:
        >>> ft.save_adapter(model, "runs/bbc-lora")  # doctest: +SKIP
    """
    found = lora_modules(model)
    if not found:
        raise ValueError("This model has no LoRA modules, so there is no adapter to save. "
                         "(After ft.merge_lora, save the whole model with ft.save_checkpoint.)")
    settings = {(m.r, m.alpha, getattr(m.lora_dropout, "p", 0.0)) for m in found.values()}
    if len(settings) > 1:
        raise ValueError(f"The LoRA modules differ in (r, alpha, dropout): {sorted(settings)}; "
                         "an adapter file holds one setting.")
    (r, alpha, dropout), = settings
    if any(m.merged for m in found.values()):
        raise ValueError("Some LoRA modules are merged; ft.unmerge_lora(model) before saving the adapter.")
    tensors = {}
    for name, m in found.items():
        tensors[f"{_PREFIX}{name}.lora_A.weight"] = m.lora_A.weight
        tensors[f"{_PREFIX}{name}.lora_B.weight"] = m.lora_B.weight
    heads = _head(model)
    head_params = [(n, p) for n, p in model.named_parameters() if n.startswith(_prefixes(heads))]
    train_head = bool(head_params) and all(p.requires_grad for _, p in head_params)
    for n, p in head_params if train_head else []:
        tensors[_PREFIX + n] = p
    card = getattr(model, "ftkit_card", None)
    config = {
        "peft_type": "LORA", "task_type": _peft_task(model), "r": r, "lora_alpha": alpha,
        "lora_dropout": dropout, "target_modules": sorted(found), "bias": "none",
        "modules_to_save": list(heads) if train_head else None,
        "fan_in_fan_out": any(_is_conv1d(m.base_layer) for m in found.values()),
        "base_model_name_or_path": card.arch if card is not None and card.arch else None,
        "inference_mode": True, "init_lora_weights": True, "use_rslora": False, "use_dora": False,
    }
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"ftkit": json.dumps({"format": "peft.lora", "written_by": "ftkit"})}
    atomic_write(folder / ADAPTER_FILE, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    text = json.dumps(config, indent=2)
    atomic_write(folder / CONFIG_FILE, lambda tmp: tmp.write_text(text))
    return folder


def load_adapter(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a LoRA adapter folder (saved by ``save_adapter`` or by peft) into ``model``; in place.

    A model without LoRA modules gets them first (``add_lora`` with the folder's settings
    and target modules); every tensor in the file must fit, and every LoRA weight of the
    model must be in the file, or nothing changes.

    Example:
        >>> model = ft.load_model("minilm-l6", num_classes=5)
        >>> ft.load_adapter(model, "runs/bbc-lora")  # doctest: +SKIP
    """
    from safetensors.torch import load_file

    folder = Path(path)
    if not (folder / CONFIG_FILE).is_file() or not (folder / ADAPTER_FILE).is_file():
        raise FileNotFoundError(f"{folder} is not an adapter folder: expected {CONFIG_FILE} and {ADAPTER_FILE} "
                                "(written by ft.save_adapter or peft's save_pretrained).")
    config = json.loads((folder / CONFIG_FILE).read_text())
    extras = [k for k in ("use_dora", "use_rslora", "rank_pattern", "alpha_pattern") if config.get(k)]
    if config.get("peft_type") != "LORA" or extras:
        raise ValueError(f"{folder} holds a {config.get('peft_type')} adapter (options {extras}); ft.load_adapter "
                         "reads plain LoRA adapters. Load it with peft.PeftModel.from_pretrained.")
    tensors = {k.removeprefix(_PREFIX): v for k, v in load_file(folder / ADAPTER_FILE).items()}
    found, flags = lora_modules(model), {n: p.requires_grad for n, p in model.named_parameters()}
    settings = {(m.r, m.alpha) for m in found.values()}
    if found and settings != {(config["r"], float(config["lora_alpha"]))}:
        raise ValueError(f"The model's LoRA modules have (r, alpha) {sorted(settings)}, the adapter in {folder} "
                         f"({config['r']}, {config['lora_alpha']}). Load it into a model without LoRA modules.")
    if not found:
        targets = config["target_modules"]
        if isinstance(targets, str):  # peft: a regex that must match the whole module name
            targets = [n for n, _ in model.named_modules() if re.fullmatch(targets, n)]
        add_lora(model, config["r"], config["lora_alpha"], config.get("lora_dropout", 0.0), targets,
                 train_head=bool(config.get("modules_to_save")))
    params = dict(model.named_parameters())
    wrong = [k for k, v in tensors.items() if k not in params or params[k].shape != v.shape]
    missing = [n for n in params if (".lora_A." in n or ".lora_B." in n) and n not in tensors]
    if wrong or missing:
        if not found:  # undo add_lora: the model is as it was
            _remove_lora(model)
            for n, p in model.named_parameters():
                p.requires_grad_(flags[n])
            apply_bn_modes(model, None)
        raise ValueError(f"The adapter in {folder} does not fit this model: {len(wrong)} tensors with no "
                         f"parameter of their shape {wrong[:3]}, {len(missing)} LoRA weights missing from the "
                         f"file {missing[:3]}. Was it saved from the same base model?")
    with torch.no_grad():
        for k, v in tensors.items():
            params[k].copy_(v)
    return model


# --- helpers ---------------------------------------------------------------------------------


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' Conv1D (GPT-2): a Linear whose weight is stored in x out. Checked by
    # name so that ftkit does not import transformers for models that don't need it.
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _lora_able(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and module.dilation == (1, 1) and module.padding_mode == "zeros"
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def _head(model: nn.Module) -> tuple[str, ...]:
    """The head's modules (the output layer and any new layers before it); () for a bare encoder."""
    try:
        return head_modules(model)
    except ValueError:  # a bare encoder has no output layer
        return ()


def _prefixes(heads: tuple[str, ...]) -> tuple[str, ...]:
    """``str.startswith`` prefixes of the parameters inside ``heads``."""
    return tuple(h + "." for h in heads)


def _is_language_model(model: nn.Module) -> bool:
    card = getattr(model, "ftkit_card", None)
    return (card is not None and card.task == "causal-lm") or type(model).__name__.endswith(
        ("ForCausalLM", "LMHeadModel"))


def _candidates(model: nn.Module, heads: tuple[str, ...]) -> list[str]:
    inside_attention = set()  # nn.MultiheadAttention reads its out_proj's weight directly: never wrap it
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            inside_attention |= {f"{name}.{child}" if name else child for child, _ in m.named_modules() if child}
    return [name for name, m in model.named_modules()
            if name and _lora_able(m) and name not in inside_attention
            and not (name in heads or name.startswith(_prefixes(heads)))]


def _target_names(model: nn.Module, targets, heads: tuple[str, ...]) -> list[str]:
    candidates = _candidates(model, heads)
    if targets is None:
        attention = [n for n in candidates if re.search(ATTENTION, n)]
        names = attention or candidates
    elif isinstance(targets, str):
        names = [n for n in candidates if re.search(targets, n)]
    else:
        wanted = list(targets)
        modules = dict(model.named_modules())
        names = [n for n, m in modules.items() if n and any(n == t or n.endswith("." + t) for t in wanted)]
        bad = [n for n in names if not _lora_able(modules[n])]
        if bad:
            raise ValueError(f"LoRA wraps nn.Linear, transformers' Conv1D and plain nn.Conv2d (groups=1, no "
                             f"dilation); these targets are not: {bad[:3]} ({type(modules[bad[0]]).__name__}).")
    if not names:
        raise ConfigError(f"No layer matches targets={targets!r}. Layers LoRA can wrap here look like: "
                         f"{candidates[:4]}{' ...' if len(candidates) > 4 else ''}.")
    return names


def _peft_task(model: nn.Module) -> str | None:
    if not hasattr(model, "config"):
        return None  # a plain PyTorch model: peft's generic PeftModel
    if _is_language_model(model):
        return "CAUSAL_LM"
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else None


def _remove_lora(model: nn.Module) -> None:
    """Replace LoRA modules by their base layers without merging (the update is dropped)."""
    for name, module in lora_modules(model).items():
        if module.merged:
            module.unmerge()
        model.set_submodule(name, module.base_layer)
