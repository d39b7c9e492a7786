"""Fine-tuning strategies as data: what trains, at what learning rate, for how long, with what help.

A ``Strategy`` is a small frozen dataclass, so a recipe can be printed in a table, hashed
into a cache key and compared with another recipe (``ft.compare``). The ready-made ones
are the recipes the lessons teach:

| function | what trains | source |
|---|---|---|
| ``scratch()`` | everything, from random weights | the baseline |
| ``linear_probe()`` | the new head only (feature extraction) | |
| ``partial(n)`` | the last ``n`` layer groups (head included) | Yosinski et al. 2014 |
| ``full()`` | everything, from the pre-trained weights | |
| ``two_phase()`` | the head, then everything with discriminative LRs | fastai's ``fine_tune`` |
| ``gradual_unfreeze()`` | one more group every epoch | ULMFiT (Howard & Ruder 2018) |
| ``discriminative()`` | everything, lower LRs for earlier groups | ULMFiT |
| ``l2sp()`` | everything, pulled towards the pre-trained weights | Li et al. 2018 |
| ``lora(r)`` | the head and low-rank updates of the weights | Hu et al. 2021 |
| ``bitfit()`` | the head and the biases | Ben Zaken et al. 2022 |

``run_strategy(strategy, model, train, val)`` applies one to a model you hold and trains it.

Example:
    >>> strategies = [ft.strategies.linear_probe(), ft.strategies.partial(2), ft.strategies.full()]
    >>> ft.strategy_table(strategies)  # doctest: +SKIP
    >>> history = ft.run_strategy(ft.strategies.two_phase(), model, data.train, data.val)  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import nn

from ..core.history import History
from ..core.util import Table
from ..data.transforms import PRESETS, with_augmentation
from ..train.config import TrainConfig, make_config
from ..train.loop import fit
from ..tuning import adapt
from ..tuning.freeze import freeze_to, unfreeze
from ..tuning.lora import add_lora
from ..tuning.regularize import L2SP, add_dropout_before_head

_STRATEGY_OWNS = ("lr", "epochs", "schedule", "unfreeze_every")  # set by Strategy fields, not by `train`


@dataclass(frozen=True)
class Phase:
    """One stage of a multi-stage recipe, e.g. two-phase training: the head first, then everything."""

    freeze: int | None = None  # as Strategy.freeze, for this phase
    epochs: int | None = None  # None: the strategy's epochs (or compare's)
    lr: float | slice = 1e-3  # this phase's learning rate; slice(lo, hi): discriminative


@dataclass(frozen=True)
class Strategy:
    """A fine-tuning recipe: which layer groups train, the learning rates, the schedule, the helpers.

    Regularizers and adapters are given as factories, functions of the freshly loaded model,
    because they need that model (L2-SP remembers its starting weights; LoRA changes its
    layers). A factory is described in tables and cache keys by its ``key`` attribute, its
    ``repr`` (the ready-made ones) or its qualified name; a lambda needs ``key=...`` on the
    strategy so that cached results can be told apart. When you change what a factory
    does, change its key (or pass ``refresh=True`` to ``compare``): the cache cannot see
    inside a function.

    Example:
        >>> ft.Strategy("head+last block", freeze=-2, lr=3e-4)
        Strategy('head+last block': last 2 groups, lr 0.0003)
        >>> ft.Strategy("full, no decay", lr=1e-4, train={"weight_decay": 0.0})
        Strategy('full, no decay': all layers, lr 0.0001, train={'weight_decay': 0.0})
    """

    name: str  # shown in tables and plots; unique within one comparison
    freeze: int | None = None  # None: everything trains; n: ft.freeze_to(model, n); -1: the head only
    lr: float | slice = 1e-4  # peak learning rate; slice(lo, hi): discriminative LRs (ULMFiT)
    epochs: int | None = None  # None: the epochs given to compare (TrainConfig's default: 3)
    schedule: str | None = None  # "constant", "step", "cosine", "onecycle"; None: the base config's
    pretrained: bool = True  # False: the same architecture from random weights (the scratch baseline)
    phases: tuple[Phase, ...] = ()  # several fits in a row (two-phase); when given, freeze/lr/epochs are unused
    unfreeze_every: int | None = None  # gradual unfreezing: one more layer group every k epochs (ULMFiT)
    regularizers: tuple[Callable, ...] = ()  # factories: model -> regularizer for fit(regularizers=...)
    adapter: Callable | None = None  # factory: changes the model and what trains (LoRA, BitFit), after freezing
    bn: str = "frozen"  # BatchNorm mode of frozen layers: "frozen" or "train" (statistics adapt)
    dropout: float | None = None  # rate of a dropout on the head's input (ft.add_dropout_before_head); None: as is
    augment: str | None = None  # augmentation preset of the training images ("light", "strong"); None: as given
    train: tuple[tuple[str, Any], ...] = ()  # other TrainConfig fields, e.g. {"weight_decay": 0.0}
    key: str = ""  # describes factories that cannot describe themselves (lambdas), for the result cache
    note: str = ""  # one line, in words, for tables

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"A Strategy needs a name (a non-empty string), got {self.name!r}.")
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", tuple(sorted(self.train.items())))
        if callable(self.regularizers):
            object.__setattr__(self, "regularizers", (self.regularizers,))
        object.__setattr__(self, "regularizers", tuple(self.regularizers))
        object.__setattr__(self, "phases", tuple(self.phases))
        fields = [f.name for f in dataclasses.fields(TrainConfig)]
        for name, _ in self.train:
            if name in _STRATEGY_OWNS:
                raise ValueError(f"Strategy {self.name!r}: set {name} with the strategy's own field "
                                 f"(Strategy({name}=...)), not in train={{...}}.")
            if name not in fields:
                raise ValueError(f"Strategy {self.name!r}: train={{{name!r}: ...}} is not a TrainConfig field; "
                                 f"the fields are: {', '.join(fields)}.")
        checks = [
            (_is_depth(self.freeze), "freeze must be None (all train) or a whole number for ft.freeze_to"),
            (self.epochs is None or (isinstance(self.epochs, int) and self.epochs >= 1), "epochs must be >= 1"),
            (all(isinstance(p, Phase) and _is_depth(p.freeze) for p in self.phases), "phases must be ft.Phase(...)"),
            (all(callable(f) for f in self.regularizers), "regularizers are factories: functions model -> regularizer"),
            (self.adapter is None or callable(self.adapter), "adapter is a factory: a function that changes the model"),
            (self.bn in ("frozen", "train"), "bn must be 'frozen' or 'train'"),
            (not (self.phases and self.unfreeze_every), "give either phases or unfreeze_every, not both"),
            (self.dropout is None or (isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
                                      and 0 <= self.dropout < 1), "dropout must be None or a rate in [0, 1)"),
            (self.augment is None or self.augment in PRESETS,
             f"augment must be None or one of the presets {PRESETS} (your own transform: put it in the dataset)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Strategy {self.name!r}: {message}.")

    def describe(self) -> dict:
        """The recipe as plain data (JSON-ready): what tables show and what the result cache hashes."""
        return {
            "name": self.name,
            "pretrained": self.pretrained,
            "trains": _trains(self.freeze, self.unfreeze_every) if not self.phases else " then ".join(
                f"{_trains(p.freeze, None)} ({_lr_text(p.lr)}, {p.epochs or 'default'} ep)" for p in self.phases),
            "freeze": self.freeze,
            "lr": _lr_text(self.lr),
            "epochs": self.epochs,
            "schedule": self.schedule,
            "phases": [{"freeze": p.freeze, "epochs": p.epochs, "lr": _lr_text(p.lr)} for p in self.phases],
            "unfreeze_every": self.unfreeze_every,
            "regularizers": [describe_factory(f) for f in self.regularizers],
            "adapter": describe_factory(self.adapter) if self.adapter is not None else None,
            "bn": self.bn,
            "dropout": self.dropout,
            "augment": self.augment,
            "train": {k: _plain(v) for k, v in self.train},
            "key": self.key,
            "note": self.note,
        }

    def phase_epochs(self, default: int) -> list[int]:
        """The epochs each phase trains (one entry without phases); ``default`` where the recipe sets none."""
        if not self.phases:
            return [self.epochs or default]
        return [p.epochs or self.epochs or default for p in self.phases]

    def cache_key(self) -> dict:
        """What identifies the recipe's results: ``describe()`` without the name and note (renaming keeps the cache)."""
        if not self.key:
            unnamed = [f for f in (*self.regularizers, self.adapter) if f is not None and _anonymous(f)]
            if unnamed:
                raise ValueError(f"Strategy {self.name!r} has a factory without a stable name ({unnamed[0]!r}), so "
                                 "its cached results could be confused with another's. Give the strategy a key "
                                 "describing it, e.g. key='my-reg(alpha=0.1)', or pass cache=False.")
        return {k: v for k, v in self.describe().items() if k not in ("name", "note")}

    def __repr__(self) -> str:
        d = self.describe()
        extras = [f"{k}={d[k]!r}" for k in ("regularizers", "adapter", "dropout", "augment", "train")
                  if d[k] not in (None, [], {}, "")]
        return f"Strategy({self.name!r}: {d['trains']}, lr {d['lr']}" + "".join(", " + e for e in extras) + ")"


# --- ready-made strategies ---------------------------------------------------------------


def scratch(lr: float = 1e-3, epochs: int | None = None, name: str = "scratch") -> Strategy:
    """The baseline: the same architecture from random weights, everything trains."""
    return Strategy(name, lr=lr, epochs=epochs, pretrained=False, note="random weights, all layers train")


def linear_probe(lr: float = 3e-3, epochs: int | None = None, name: str = "linear probe") -> Strategy:
    """Feature extraction: the pre-trained network frozen, only the new head trains (fit caches the features)."""
    return Strategy(name, freeze=-1, lr=lr, epochs=epochs, note="frozen backbone, new head trains")


def partial(n: int = 2, lr: float = 3e-4, epochs: int | None = None, name: str | None = None) -> Strategy:
    """The last ``n`` layer groups train (the head counts as one), the earlier ones stay frozen."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"partial(n) trains the last n layer groups (the head is one), so n >= 1; got {n!r}.")
    return Strategy(name or f"partial-{n}", freeze=-n, lr=lr, epochs=epochs,
                    note=f"last {n} layer groups train (head included)")


def full(lr: float = 1e-4, epochs: int | None = None, name: str = "full") -> Strategy:
    """Full fine-tuning: every layer trains from the pre-trained weights, at a low learning rate."""
    return Strategy(name, lr=lr, epochs=epochs, note="all layers train from the pre-trained weights")


def two_phase(lr: float = 2e-3, head_epochs: int = 1, epochs: int | None = None, lr_mult: float = 100.0,
              name: str = "two-phase") -> Strategy:
    """fastai's ``fine_tune``: train the head alone, then unfreeze and train everything with slice LRs.

    Phase 1: head only at ``lr``, for ``head_epochs``. Phase 2: all groups for ``epochs``
    (None: compare's), ``slice(lr / 2 / lr_mult, lr / 2)``, so the first group moves
    ``lr_mult`` times slower than the head. As in fastai, the head epochs come on top.
    """
    base = lr / 2
    return Strategy(name, phases=(Phase(freeze=-1, epochs=head_epochs, lr=lr),
                                  Phase(freeze=None, epochs=epochs, lr=slice(base / lr_mult, base))),
                    note="head first, then everything with discriminative LRs (fastai fine_tune)")


def gradual_unfreeze(lr: float | slice = slice(1e-5, 1e-3), every: int = 1, epochs: int | None = None,
                     name: str = "gradual unfreezing") -> Strategy:
    """ULMFiT's gradual unfreezing: the head first, then one more layer group every ``every`` epochs."""
    return Strategy(name, lr=lr, epochs=epochs, unfreeze_every=every,
                    note=f"head first, one more layer group every {every} epoch(s) (ULMFiT)")


def discriminative(lr: slice = slice(1e-5, 1e-3), epochs: int | None = None,
                   name: str = "discriminative") -> Strategy:
    """Everything trains; learning rates rise geometrically from the first group (lo) to the head (hi)."""
    if not isinstance(lr, slice):
        raise ValueError(f"discriminative(lr=slice(lo, hi)) spreads rates over the layer groups; got lr={lr!r}.")
    return Strategy(name, lr=lr, epochs=epochs, note="all layers train, lower LRs for earlier groups (ULMFiT)")


def l2sp(alpha: float = 1e-2, beta: float = 1e-4, lr: float = 1e-4, epochs: int | None = None,
         name: str = "L2-SP") -> Strategy:
    """Full fine-tuning with L2-SP (Li, Grandvalet & Davoine 2018): weights pulled towards their pre-trained values."""
    return Strategy(name, lr=lr, epochs=epochs, regularizers=(L2SPFactory(alpha, beta),),
                    train={"weight_decay": 0.0}, note="all layers train, pulled towards the pre-trained weights")


def lora(r: int = 8, alpha: float = 16, lr: float = 1e-3, epochs: int | None = None, dropout: float = 0.0,
         targets: str | Sequence[str] | None = None, name: str | None = None) -> Strategy:
    """LoRA (Hu et al. 2021): frozen weights plus trainable low-rank updates ``B @ A``; the head trains."""
    factory = LoRAFactory(r, alpha, dropout, targets if isinstance(targets, (str, type(None))) else tuple(targets))
    return Strategy(name or f"LoRA r={r}", freeze=-1, lr=lr, epochs=epochs, adapter=factory,
                    note=f"frozen weights + rank-{r} updates, head trains")


def bitfit(lr: float = 1e-3, epochs: int | None = None, name: str = "BitFit") -> Strategy:
    """BitFit (Ben Zaken, Ravfogel & Goldberg 2022): only the biases (and the head) train."""
    return Strategy(name, freeze=-1, lr=lr, epochs=epochs, adapter=BitFitFactory(),
                    note="only biases and the head train")


# The factories of the ready-made strategies. Small frozen dataclasses, so their repr is a
# stable description for the cache; the PEFT modules are imported when a model is built.


@dataclass(frozen=True)
class L2SPFactory:
    alpha: float = 1e-2  # pull of the pre-trained weights towards their starting point
    beta: float = 1e-4  # plain L2 on the new head

    def __call__(self, model: nn.Module):
        return L2SP(model, alpha=self.alpha, beta=self.beta)

    def __repr__(self) -> str:
        return f"L2SP(alpha={self.alpha:g}, beta={self.beta:g})"


@dataclass(frozen=True)
class LoRAFactory:
    r: int = 8  # rank of the update
    alpha: float = 16  # the update is scaled by alpha / r
    dropout: float = 0.0  # dropout on the LoRA branch's input
    targets: str | tuple[str, ...] | None = None  # a regex or module names to adapt; None: add_lora's default

    def __call__(self, model: nn.Module):
        return add_lora(model, r=self.r, alpha=self.alpha, dropout=self.dropout,
                        targets=list(self.targets) if isinstance(self.targets, tuple) else self.targets)

    def __repr__(self) -> str:
        return f"LoRA(r={self.r}, alpha={self.alpha:g}, dropout={self.dropout:g}, targets={self.targets})"


@dataclass(frozen=True)
class BitFitFactory:
    def __call__(self, model: nn.Module):
        return adapt.bitfit(model)

    def __repr__(self) -> str:
        return "BitFit()"


# --- applying a strategy -------------------------------------------------------------------


def run_strategy(strategy: Strategy, model: nn.Module, train: Any, val: Any = None, *,
                 config: TrainConfig | None = None, seed: int | None = 0, callbacks: Sequence[Callable] = (),
                 live: bool | None = None, **overrides) -> History:
    """Freeze, adapt and regularise ``model`` as ``strategy`` says, then train it (``fit``, once per phase).

    ``model`` should be freshly loaded (``strategy.pretrained`` is for ``compare``, which
    loads it). With several phases the History holds all of them in a row, each epoch
    marked with its ``phase``; ``config`` and ``overrides`` are the base that the
    strategy's own settings replace.

    Example:
        >>> model = ft.load_model("minilm-l6", num_classes=5)
        >>> history = ft.run_strategy(ft.strategies.two_phase(), model, data.train, data.val, epochs=2)  # doctest: +SKIP
    """
    base = make_config(config, overrides)
    extra = dict(strategy.train)
    if strategy.dropout is not None:
        add_dropout_before_head(model, strategy.dropout)
    if strategy.augment is not None:
        train = with_augmentation(train, strategy.augment)
    phases = strategy.phases or (Phase(strategy.freeze, strategy.epochs, strategy.lr),)
    epochs = strategy.phase_epochs(base.epochs)
    regularizers: list = []
    histories = []
    for i, phase in enumerate(phases):
        set_trainable(model, phase.freeze, strategy.bn)
        if i == 0 and strategy.adapter is not None:  # it decides what trains (LoRA: its updates and the head)
            model = strategy.adapter(model) or model
        if i == 0:
            for factory in strategy.regularizers:
                made = factory(model)
                regularizers += list(made) if isinstance(made, (list, tuple)) else [made]
        settings = dict(extra, lr=phase.lr, epochs=epochs[i],
                        unfreeze_every=strategy.unfreeze_every if not strategy.phases else None,
                        seed=None if seed is None else seed + 1000 * i)
        if strategy.schedule is not None:
            settings["schedule"] = strategy.schedule
        histories.append(fit(model, train, val, base, callbacks=callbacks, regularizers=regularizers, live=live,
                             **settings))
        if histories[-1].interrupted:
            break
    history = merge_histories(histories) if len(histories) > 1 else histories[0]
    history.info["strategy"] = strategy.describe()
    return history


def set_trainable(model: nn.Module, freeze: int | None, bn: str = "frozen") -> nn.Module:
    """``None``: everything trains (``ft.unfreeze``); an int: ``ft.freeze_to(model, freeze, bn=bn)``."""
    return unfreeze(model) if freeze is None else freeze_to(model, freeze, bn=bn)


def merge_histories(histories: Sequence[History]) -> History:
    """Several fits in a row as one History: steps and epochs renumbered, each epoch marked with its ``phase``."""
    merged = History(info=dict(histories[-1].info))
    for phase, h in enumerate(histories, 1):
        epoch0, step0 = len(merged.epochs), len(merged.steps)
        merged.steps += [dict(s, step=s["step"] + step0, epoch=s["epoch"] + epoch0, phase=phase) for s in h.steps]
        merged.epochs += [dict(e, epoch=e["epoch"] + epoch0, phase=phase) for e in h.epochs]
    merged.info["path"] = " + ".join(h.info.get("path", "?") for h in histories)
    merged.info["phases"] = [h.info for h in histories]
    merged.info["interrupted"] = any(h.interrupted for h in histories)
    return merged


# --- describing strategies --------------------------------------------------------


def strategy_table(strategies: Sequence[Strategy]) -> Table:
    """The recipes side by side: what trains, learning rates, epochs, helpers.

    Example:
        >>> ft.strategy_table([ft.strategies.linear_probe(), ft.strategies.two_phase(), ft.strategies.lora(8)])  # doctest: +SKIP
    """
    rows = []
    for s in strategies:
        d = s.describe()
        rows.append({"strategy": d["name"], "pre-trained": d["pretrained"], "trains": d["trains"],
                     "lr": d["lr"] if not s.phases else "per phase", "epochs": d["epochs"] or "default",
                     "helpers": ", ".join(d["regularizers"] + ([d["adapter"]] if d["adapter"] else [])
                                          + ([f"dropout {d['dropout']:g}"] if d["dropout"] is not None else [])
                                          + ([f"augment {d['augment']}"] if d["augment"] else [])) or "-",
                     "settings": ", ".join(f"{k}={v}" for k, v in d["train"].items()) or "-"})
    return Table(rows, title="fine-tuning strategies")


def describe_factory(factory: Callable) -> str:
    """A short, stable description of a factory: its ``key``, a dataclass repr, a partial's arguments, or its name."""
    key = getattr(factory, "key", None)
    if isinstance(key, str) and key:
        return key
    if dataclasses.is_dataclass(factory):
        return repr(factory)
    if isinstance(factory, functools.partial):
        args = [repr(a) for a in factory.args] + [f"{k}={v!r}" for k, v in factory.keywords.items()]
        return f"{describe_factory(factory.func)}({', '.join(args)})"
    name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{getattr(factory, '__module__', '') or ''}.{name}".lstrip(".")


def _anonymous(factory: Callable) -> bool:
    """True when the name does not pin down what the factory does (a lambda, a closure)."""
    if getattr(factory, "key", None) or dataclasses.is_dataclass(factory):
        return False
    if isinstance(factory, functools.partial):
        return _anonymous(factory.func)
    name = getattr(factory, "__qualname__", "")
    return "<lambda>" in name or "<locals>" in name or bool(getattr(factory, "__closure__", None))


def _is_depth(freeze) -> bool:
    return freeze is None or (isinstance(freeze, int) and not isinstance(freeze, bool))


def _trains(freeze: int | None, unfreeze_every: int | None) -> str:
    if unfreeze_every:
        return f"head, +1 group every {unfreeze_every} epoch(s)"
    if freeze is None:
        return "all layers"
    if freeze == -1:
        return "head only"
    if freeze < 0:
        return f"last {-freeze} groups"
    return f"groups {freeze}+ (0-{freeze - 1} frozen)" if freeze else "all layers"


def _lr_text(lr) -> str:
    if isinstance(lr, slice):
        return f"{lr.start:g}..{lr.stop:g}" if lr.start is not None else f"{lr.stop:g}/10..{lr.stop:g}"
    return f"{lr:g}"


def _plain(value):
    if isinstance(value, slice):
        return _lr_text(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
