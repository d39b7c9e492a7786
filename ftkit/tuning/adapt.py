"""Parameter-efficient fine-tuning besides LoRA: adapters, BitFit, prompt tuning; and the peft bridge.

Each method freezes the pre-trained network and trains a small number of new or chosen
parameters (plus the new head), so one copy of the big model serves many tasks:

- ``add_adapters``: bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer
  Learning for NLP"): a small down-projection, a nonlinearity and an up-projection with a
  residual connection, inserted after chosen layers. The up-projection starts at zero, so
  each adapter starts as the identity and the model as the pre-trained one.
- ``bitfit``: train only the bias terms (Ben Zaken, Ravfogel & Goldberg 2022, "BitFit").
- ``prompt_tuning``: learn ``n_tokens`` input vectors prepended to every sequence (Lester,
  Al-Rfou & Constant 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning").
- ``to_peft`` / ``from_peft``: turn an ftkit LoRA model into a ``peft.PeftModel`` and back
  (through peft's adapter files, which ``ft.save_adapter`` writes).

LoRA itself is in ``ftkit.tuning.lora``. Every function works in place, returns the model, and
leaves BatchNorm layers whose weights are frozen with fixed statistics (``ft.freeze``'s
"frozen" mode). ``ft.trainable_summary(model)`` shows what trains.

Example:
    >>> ft.add_adapters(model, bottleneck=32)     # or ft.bitfit(model), ft.prompt_tuning(model, 20)  # doctest: +SKIP
    >>> ft.trainable_summary(model)  # doctest: +SKIP
"""
from __future__ import annotations

import functools
import re
import tempfile

import torch
from torch import nn

from ..models.groups import find_blocks, layer_groups
from .freeze import apply_bn_modes
from .lora import _head, _is_conv1d, _is_language_model, _prefixes, _remove_lora, load_adapter, save_adapter

# Houlsby et al. put an adapter after the attention block's output projection and after
# the feed-forward block's output projection, before each residual sum and LayerNorm.
# These are those layers' names in BERT/RoBERTa/ViT (…output.dense), GPT-2 (c_proj),
# DistilBERT (out_lin, lin2) and LLaMA-style models (o_proj, down_proj).
HOULSBY_SITES = r"(^|\.)(output\.dense|attn\.c_proj|mlp\.c_proj|out_lin|lin2|o_proj|down_proj)$"


# --- adapters ------------------------------------------------------------------------------


class Adapter(nn.Module):
    """``h + up(act(down(h)))`` on the last dimension; on images (N, C, H, W) on the channels of each pixel."""

    def __init__(self, dim: int, bottleneck: int = 64):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)  # zero up-projection: the adapter starts as the identity
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        image = h.dim() == 4  # channels last for the Linear layers: a 1x1 convolution (Rebuffi et al. 2017)
        x = h.movedim(1, -1) if image else h
        if x.shape[-1] != self.down.in_features:
            raise ValueError(f"This adapter was built for {self.down.in_features} features but its layer outputs "
                             f"shape {tuple(h.shape)}. Choose other layers with add_adapters(after=...).")
        x = x + self.up(self.act(self.down(x)))
        return x.movedim(-1, 1) if image else x


class WithAdapter(nn.Module):
    """A (frozen) layer followed by an adapter on its output (the first element when it returns a tuple)."""

    def __init__(self, base_layer: nn.Module, adapter: Adapter):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        out = self.base_layer(*args, **kwargs)
        if isinstance(out, torch.Tensor):
            return self.adapter(out)
        if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
            return (self.adapter(out[0]),) + tuple(out[1:])
        raise TypeError(f"An adapter needs a layer that returns a tensor (or a tuple starting with one); "
                        f"{type(self.base_layer).__name__} returned {type(out).__name__}. Choose other layers "
                        "with after=....")


def add_adapters(model: nn.Module, bottleneck: int = 64, after: str | None = None,
                 train_head: bool | None = None) -> nn.Module:
    """Insert bottleneck adapters after the chosen layers and freeze the rest (but the head); in place.

    Args:
        bottleneck: the adapter's inner width (Houlsby et al. used 8 to 256 for BERT-base).
        after: a regex searched in module names. Default: Houlsby's two places per
            transformer layer (after the attention and feed-forward output projections);
            else after each block of a model with a list of blocks; else after each stage
            (top-level child with layers) of a CNN, e.g. ResNet's layer1..layer4.
        train_head: the output layer trains too; default True, False for language models.

    Example:
        >>> ft.add_adapters(model, bottleneck=32)  # doctest: +SKIP
        >>> ft.add_adapters(resnet, after=r"^layer[34]$")  # doctest: +SKIP
    """
    if isinstance(bottleneck, bool) or not isinstance(bottleneck, int) or bottleneck < 1:
        raise ValueError(f"bottleneck is the adapter's inner width, a whole number >= 1; got {bottleneck!r}.")
    if any(isinstance(m, WithAdapter) for m in model.modules()):
        raise ValueError("This model already has adapters; start from a fresh model to add others.")
    heads = _head(model)
    names = _adapter_sites(model, after, heads)
    adapters = []
    for name in names:
        base = model.get_submodule(name)
        dim = _output_size(base)
        if dim is None:
            raise ValueError(f"Cannot tell the output size of {name!r} ({type(base).__name__}) to build its "
                             "adapter; choose layers that end in a Linear, Conv2d or norm layer with after=....")
        weight = next(base.parameters())
        adapter = Adapter(dim, bottleneck).to(device=weight.device, dtype=weight.dtype)
        model.set_submodule(name, WithAdapter(base, adapter))
        adapters.append(adapter)
    try:
        layer_groups(model)  # a card's layer-group rules must still cover every parameter
    except ValueError as err:
        for name in names:
            model.set_submodule(name, model.get_submodule(name).base_layer)
        raise ValueError(f"Adapters after {names[:3]}... rename parameters in a way this model's layer groups do "
                         f"not cover ({err}). Choose other layers with after=....") from err
    _train_only(model, {id(p) for a in adapters for p in a.parameters()}, heads, train_head)
    return model


def _adapter_sites(model: nn.Module, after: str | None, heads: tuple[str, ...]) -> list[str]:
    named = [(n, m) for n, m in model.named_modules() if n and not _inside(n, heads)]
    if after is not None:
        try:
            names = [n for n, m in named if re.search(after, n) and any(True for _ in m.parameters())]
        except re.error as err:
            raise ValueError(f"after={after!r} is not a valid regular expression: {err}") from err
        if not names:
            raise ValueError(f"No layer with parameters matches after={after!r}; module names look like "
                             f"{[n for n, _ in named[:4]]}.")
        return [n for n in names if not any(n.startswith(o + ".") for o in names)]  # outermost matches only
    sites = [n for n, m in named if re.search(HOULSBY_SITES, n) and (isinstance(m, nn.Linear) or _is_conv1d(m))]
    if sites:
        return sites
    blocks = _attention_blocks(model) or find_blocks(model)
    if blocks is not None:
        return [f"{blocks}.{n}" for n, _ in model.get_submodule(blocks).named_children()]
    has_layers = lambda m: any(isinstance(x, (nn.Linear, nn.Conv2d)) for x in m.modules())
    stages = [(n, m) for n, m in model.named_children() if not _inside(n, heads) and has_layers(m)]
    if len(stages) == 1 and isinstance(stages[0][1], nn.Sequential):  # features = Sequential(stage, stage, ...)
        outer = stages[0][0]
        stages = [(f"{outer}.{n}", m) for n, m in stages[0][1].named_children() if has_layers(m)]
    deep = [n for n, m in stages if any(True for _ in m.children())]
    return deep or [n for n, _ in stages]


def _attention_blocks(model: nn.Module) -> str | None:
    """The largest ModuleList or Sequential of same-type blocks with attention (torchvision's ViT), if any."""
    best, size = None, 1
    for name, m in model.named_modules():
        kids = list(m.children()) if isinstance(m, (nn.ModuleList, nn.Sequential)) else []
        same = len({type(k) for k in kids}) == 1
        attention = same and any(isinstance(x, nn.MultiheadAttention) or "attention" in type(x).__name__.lower()
                                 for x in kids[0].modules())
        if attention and len(kids) > size:
            best, size = name, len(kids)
    return best


def _inside(name: str, heads: tuple[str, ...]) -> bool:
    """Is module ``name`` part of the head, or a module that holds part of it?"""
    return any(name == h or name.startswith(h + ".") or h.startswith(name + ".") for h in heads)


def _output_size(module: nn.Module) -> int | None:
    """The module's output features (channels), read from its last Linear, conv or norm layer."""
    dim = None
    for m in module.modules():
        if isinstance(m, nn.Linear):
            dim = m.out_features
        elif _is_conv1d(m):
            dim = m.weight.shape[1]
        elif isinstance(m, nn.Conv2d):
            dim = m.out_channels
        elif isinstance(m, nn.BatchNorm2d):
            dim = m.num_features
        elif isinstance(m, nn.LayerNorm):
            dim = m.normalized_shape[-1]
    return dim


# --- BitFit --------------------------------------------------------------------------------


def bitfit(model: nn.Module, train_head: bool | None = None) -> nn.Module:
    """Train only the bias terms (and the head), in place (Ben Zaken et al. 2022).

    All parameters named ``...bias`` train: those of Linear and conv layers and of
    LayerNorm/BatchNorm. A BatchNorm whose bias trains updates its statistics.

    Example:
        >>> ft.bitfit(model)  # doctest: +SKIP
        >>> ft.trainable_summary(model)      # about 0.1% of BERT's parameters  # doctest: +SKIP
    """
    biases = {id(p) for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] == "bias"}
    if not biases:
        raise ValueError(f"{type(model).__name__} has no bias parameters, so BitFit has nothing to train.")
    _train_only(model, biases, _head(model), train_head)
    return model


# --- prompt tuning ---------------------------------------------------------------------------


class SoftPrompt(nn.Module):
    """``n_tokens`` trainable vectors in the input-embedding space, put in front of every sequence."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(init.detach().clone())

    def extra_repr(self) -> str:
        return f"n_tokens={self.weight.shape[0]}, dim={self.weight.shape[1]}"


def prompt_tuning(model: nn.Module, n_tokens: int = 20, train_head: bool | None = None) -> nn.Module:
    """Prepend ``n_tokens`` trainable embeddings to every input; freeze the rest (but the head); in place.

    For Hugging Face transformer models (BERT-like encoders). The prompt is initialised
    from the embeddings of random vocabulary tokens (Lester et al., section 3), lives at
    ``<embeddings>.soft_prompt`` (so it joins the "embeddings" layer group), and a forward
    pre-hook on the model turns ``input_ids`` into ``inputs_embeds`` with the prompt in
    front and extends ``attention_mask`` (and ``token_type_ids``) to cover it. Batches
    stay ``{"input_ids", "attention_mask", "labels"}``, so ``ft.fit`` works unchanged.
    The prompt comes before every token, [CLS] included (as in Lester et al. and peft).

    Example:
        >>> ft.prompt_tuning(model, n_tokens=20)  # doctest: +SKIP
        >>> ft.fit(model, data.train, data.val, lr=3e-2)     # prompts like high learning rates  # doctest: +SKIP
    """
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"n_tokens is the number of prompt vectors, a whole number >= 1; got {n_tokens!r}.")
    if not hasattr(model, "get_input_embeddings") or not hasattr(model, "config"):
        raise TypeError(f"prompt_tuning works on Hugging Face transformer models (inputs are token ids); "
                        f"{type(model).__name__} is not one. For other models try ft.add_lora or ft.add_adapters.")
    if any(isinstance(m, SoftPrompt) for m in model.modules()):
        raise ValueError("This model already has a soft prompt; start from a fresh model for another one.")
    embeddings = model.get_input_embeddings()
    where = next(n for n, m in model.named_modules() if m is embeddings).rpartition(".")[0]
    picks = torch.randint(0, embeddings.weight.shape[0], (n_tokens,))
    prompt = SoftPrompt(embeddings.weight[picks])
    model.get_submodule(where).add_module("soft_prompt", prompt)
    model.register_forward_pre_hook(functools.partial(_prepend_prompt, path=f"{where}.soft_prompt".lstrip(".")),
                                    with_kwargs=True)
    _train_only(model, {id(prompt.weight)}, _head(model), train_head)
    return model


def _prepend_prompt(model: nn.Module, args: tuple, kwargs: dict, path: str):
    """Forward pre-hook: input_ids -> inputs_embeds with the prompt in front; masks extended."""
    kwargs = dict(kwargs)
    if args:  # model(input_ids, attention_mask, ...) called positionally
        kwargs.update(zip(("input_ids", "attention_mask", "token_type_ids"), args))
        args = ()
    ids = kwargs.pop("input_ids", None)
    embeds = kwargs.get("inputs_embeds")
    if embeds is None:
        embeds = model.get_input_embeddings()(ids)
    prompt = model.get_submodule(path).weight
    batch, n = embeds.shape[0], prompt.shape[0]
    kwargs["inputs_embeds"] = torch.cat([prompt.to(embeds.dtype).expand(batch, -1, -1), embeds], dim=1)
    mask = kwargs.get("attention_mask")
    if mask is None:
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    kwargs["attention_mask"] = torch.cat([mask.new_ones(batch, n), mask], dim=1)
    if kwargs.get("token_type_ids") is not None:
        kwargs["token_type_ids"] = torch.cat([kwargs["token_type_ids"].new_zeros(batch, n),
                                              kwargs["token_type_ids"]], dim=1)
    kwargs.pop("position_ids", None)  # positions are counted from the first prompt vector
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and kwargs["inputs_embeds"].shape[1] > limit:
        raise ValueError(f"With {n} prompt vectors the sequences are {kwargs['inputs_embeds'].shape[1]} long, "
                         f"more than the model's {limit} positions. Use fewer n_tokens or shorter texts.")
    return args, kwargs


# --- shared -----------------------------------------------------------------------------------


def _train_only(model: nn.Module, keep: set[int], heads: tuple[str, ...], train_head: bool | None) -> None:
    """Freeze every parameter but those in ``keep`` (by id) and, when asked, the head's."""
    train_head = (not _is_language_model(model)) if train_head is None else train_head
    for name, p in model.named_parameters():
        in_head = name.startswith(_prefixes(heads))
        p.requires_grad_(id(p) in keep or (train_head and in_head))
    apply_bn_modes(model, None)


# --- the peft bridge ----------------------------------------------------------------------------


def to_peft(model: nn.Module):
    """The same LoRA model as a ``peft.PeftModel``, for peft's own tools (the model is converted in place).

    Goes through peft's adapter files: ``ft.save_adapter`` writes them, the LoRA modules
    are taken out (not merged), and ``peft.PeftModel.from_pretrained`` loads them back
    into the plain model, trainable.

    Example:
        >>> peft_model = ft.to_peft(model)  # doctest: +SKIP
        >>> peft_model.print_trainable_parameters()  # doctest: +SKIP
    """
    import peft

    with tempfile.TemporaryDirectory() as folder:
        save_adapter(model, folder)
        _remove_lora(model)
        return peft.PeftModel.from_pretrained(model, folder, is_trainable=True)


def from_peft(peft_model) -> nn.Module:
    """A ``peft.PeftModel`` with a LoRA adapter as a plain model with ftkit's LoRA modules (same weights).

    Example:
        >>> model = ft.from_peft(peft.get_peft_model(base, peft.LoraConfig(r=8, target_modules=["query"])))  # doctest: +SKIP
    """
    with tempfile.TemporaryDirectory() as folder:
        peft_model.save_pretrained(folder)
        base = peft_model.unload()  # the plain model again, LoRA layers taken out (not merged)
        return load_adapter(base, folder)
