"""Experiments: run strategies side by side over seeds and data sizes, and cache the results.

``compare`` answers "which recipe is best here, and by how much?": every strategy starts
from the same pre-trained model, trains on the same data with the same seeds, and is
scored on the test split, which no strategy saw (validation data steers early stopping).
A result is the mean and the spread over seeds: with a few examples per class, the seed
alone can move accuracy by several points, and a difference smaller than that spread is
not a difference.

Every run (strategy x seed x training-set size) is cached on disk as JSON under
``ftkit.core.util.cache_dir("results")``, keyed by a hash of everything that determines it
(``ftkit.experiments.results``). Re-running a lesson cell is instant; ``refresh=True`` or
``cache=False`` trains again. ``sweep`` makes the variants of a hyperparameter search.

Example:
    >>> data = ft.load_dataset("bbc-news", "minilm-l6")  # doctest: +SKIP
    >>> result = ft.compare([ft.strategies.scratch(), ft.strategies.linear_probe(), ft.strategies.full()], model="minilm-l6",  # doctest: +SKIP
    ...                     data=data, per_class=8, seeds=[0, 1, 2], epochs=5)
    >>> result                                   # one row per strategy, mean ± std over seeds  # doctest: +SKIP
    >>> ft.plot_compare(result); result.best("accuracy")  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import random
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..core.device import pick_device, seed_everything
from ..core.util import cache_dir, release_memory
from ..data.labeled import few_shot
from ..models.catalogue import load_model
from ..train.config import TrainConfig, make_config
from ..train.evaluate import evaluate
from ..train.feature_cache import weights_fingerprint
from .analysis import ForgettingMeter, gap_against
from .results import SCORES, SHOWN, ResultTable, digest, load_run, run_key, save_run, summarise, validation_scores
from .strategies import Strategy, _plain, run_strategy


def compare(strategies: Strategy | Sequence[Strategy], model: str | Callable[[], nn.Module], data: Any, *,
            seeds: Sequence[int] = (0, 1, 2), per_class: int | None = None, source: Any = None,
            new_head: bool = True, gap: bool = False, config: TrainConfig | None = None, cache: bool = True,
            refresh: bool = False, progress: bool | Callable[[dict], None] = True, model_key: str | None = None,
            callbacks: Sequence[Any] = (), **overrides) -> ResultTable:
    """Train each strategy from the same pre-trained start, once per seed; score each on the test split.

    Args:
        strategies: ``ft.Strategy`` objects with distinct names (``ft.strategies.full()``, ``ft.strategies.lora(8)`` ...).
        model: a catalogue name (each run loads it afresh), or a function returning a fresh
            model (it may take ``pretrained=``; otherwise a scratch run re-initialises every
            layer with ``reset_parameters``). A function is identified in the cache by its
            qualified name, or by ``model_key``. Each run seeds everything before calling it,
            so a function that seeds itself gives every seed the same new head.
        data: a ``Splits`` prepared for the model: ``train`` trains, ``val`` validates, ``test`` scores.
        seeds: one run per seed; the seed sets the new head, the batch order, dropout and
            (with ``per_class``) which examples are drawn.
        per_class: train on ``ft.few_shot(data.train, per_class, seed)``; None: the whole train split.
        source: a dataset of the pre-training task (a Splits: its test split). Adds
            ``source_accuracy`` (the fine-tuned body measured through the pre-trained head,
            ``ft.forgetting``) and ``forgetting`` (the pre-trained model's source accuracy
            minus the fine-tuned one's; not defined for scratch), and records
            ``source_accuracy`` after every epoch in each History (``ft.ForgettingMeter``,
            for ``ft.plot_forgetting``).
        new_head: a fresh output layer for ``data``'s classes; False keeps the pre-trained head
            (same label space, e.g. rendered digits -> handwritten digits).
        gap: also score each run on the examples it trained on (augmentation off, as
            ``ft.generalization_gap``): adds ``train_accuracy`` and ``gap`` (train minus test
            accuracy, the generalisation gap) for classification.
        config, overrides: the base training settings (``epochs=5``, ``batch_size=16`` ...);
            a strategy's own settings replace them.
        cache, refresh: reuse cached runs; ``refresh=True`` trains again and overwrites them.
        progress: print a line per run, or a function called with each run's numbers.
        callbacks: ``fit`` callbacks for every run (a Stop button's ``Stopper``, a ``LiveView``).
            Runs read from the cache do not train, so their callbacks are not called; ``refresh=True``
            trains every run again.

    Ctrl-C (or a callback raising KeyboardInterrupt) stops the comparison inside the run it is
    in: that run is not cached, the finished ones are, and KeyboardInterrupt is raised again.

    Returns:
        A ``ResultTable``: one row per strategy with the mean and std over seeds of
        accuracy and macro F1 on the test split (MSE/MAE for regression), the validation
        scores of the final weights (``val_accuracy``, ``val_loss``: choose settings by
        these, then report the chosen row's test score once), trainable
        parameters, wall time, samples/s, peak memory, the path (feature cache or not),
        and forgetting with ``source``; ``result.runs`` has every run with its History.

    Example:
        >>> result = ft.compare([ft.strategies.linear_probe(), ft.strategies.full()], model="minilm-l6", data=data, per_class=8)  # doctest: +SKIP
        >>> result.best("accuracy")["strategy"]  # doctest: +SKIP
    """
    runs = _run_all(_as_list(strategies), model, data, seeds=seeds, sizes=[per_class], source=source,
                    new_head=new_head, gap=gap, config=config, cache=cache, refresh=refresh, progress=progress,
                    model_key=model_key, callbacks=callbacks, overrides=overrides)
    rows = summarise(runs, by=("strategy",))
    k = f", {per_class} per class" if per_class is not None else ""
    return ResultTable(rows, runs, "compare", title=f"{_model_name(model, model_key)} on {_data_name(data)}{k}",
                       footer=f"mean ± std over seeds {list(seeds)}, scored on the test split "
                              f"({len(data.test):,} examples); val_ columns: the validation split "
                              f"({len(data.val):,}), to choose settings by")


def data_efficiency(strategies: Strategy | Sequence[Strategy], model: str | Callable[[], nn.Module], data: Any, *,
                    per_class: Sequence[int | None] = (1, 2, 4, 8, 16, None), seeds: Sequence[int] = (0, 1, 2),
                    source: Any = None, new_head: bool = True, gap: bool = False, config: TrainConfig | None = None,
                    cache: bool = True, refresh: bool = False, progress: bool | Callable[[dict], None] = True,
                    model_key: str | None = None, callbacks: Sequence[Any] = (), **overrides) -> ResultTable:
    """``compare`` over training-set sizes: one row per (strategy, examples per class).

    ``None`` in ``per_class`` means the whole training split; the other arguments are
    ``compare``'s. For a seed, the examples of a smaller size are among those of a larger
    one (``ft.few_shot``), so the curve adds examples rather than swapping them. Plot it
    with ``ft.plot_data_efficiency(result)``.

    Example:
        >>> curve = ft.data_efficiency([ft.strategies.scratch(), ft.strategies.full()], model="minilm-l6", data=data,  # doctest: +SKIP
        ...                            per_class=[1, 2, 4, 8, 16])
    """
    runs = _run_all(_as_list(strategies), model, data, seeds=seeds, sizes=list(per_class), source=source,
                    new_head=new_head, gap=gap, config=config, cache=cache, refresh=refresh, progress=progress,
                    model_key=model_key, callbacks=callbacks, overrides=overrides)
    rows = summarise(runs, by=("strategy", "per_class"))
    return ResultTable(rows, runs, "data_efficiency",
                       title=f"data efficiency: {_model_name(model, model_key)} on {_data_name(data)}",
                       footer=f"mean ± std over seeds {list(seeds)}, scored on the test split (val_ columns: "
                              "the validation split, to choose settings by); per_class 'all' = the whole train split")


def sweep(strategy: Strategy, n: int | None = None, seed: int = 0, **values: Sequence) -> list[Strategy]:
    """Variants of a strategy for a hyperparameter search: the full grid, or ``n`` random points of it.

    Keys are Strategy fields (``lr``, ``epochs``, ``freeze`` ...) or TrainConfig fields
    (``weight_decay``, ``batch_size`` ...); names say what changed.

    Example:
        >>> ft.compare(ft.sweep(ft.strategies.full(), lr=[1e-5, 1e-4, 1e-3]), model="minilm-l6", data=data)  # doctest: +SKIP
        >>> ft.sweep(ft.strategies.full(), n=4, lr=[1e-5, 3e-5, 1e-4], weight_decay=[0, 0.01])   # random search  # doctest: +SKIP
    """
    if not values:
        raise ValueError("sweep needs values to vary, e.g. ft.sweep(ft.strategies.full(), lr=[1e-5, 1e-4, 1e-3]).")
    own = {f.name for f in dataclasses.fields(Strategy)}
    points = list(itertools.product(*values.values()))
    if n is not None:
        points = random.Random(seed).sample(points, min(n, len(points)))
    out = []
    for point in points:
        change = dict(zip(values, point))
        label = ", ".join(f"{k}={_plain(v)}" for k, v in change.items())
        fields = {k: v for k, v in change.items() if k in own}
        train = dict(strategy.train, **{k: v for k, v in change.items() if k not in own})
        out.append(dataclasses.replace(strategy, name=f"{strategy.name} {label}", train=train, **fields))
    return out



# --- running --------------------------------------------------------------------------------


def _run_all(strategies, model, data, *, seeds, sizes, source, new_head, gap, config, cache, refresh, progress,
             model_key, callbacks, overrides) -> list[dict]:
    _check_inputs(strategies, model, data, seeds)
    base = make_config(config, dict({"progress": False}, **overrides))
    source = getattr(source, "test", source)
    meters: dict = {}  # the forgetting meter, made (and the pre-trained model scored) once, when a run needs it
    todo = [(s, seed, k) for k in sizes for s in strategies for seed in seeds]
    # The starting weights, hashed once: retrained weights under an unchanged name or card never match old rows.
    weights = _starting_weights(model, any(s.pretrained for s in strategies)) if cache else None
    runs = []
    for i, (strategy, seed, k) in enumerate(todo, 1):
        key = None
        if cache:
            key = run_key(strategy, model, model_key, data, seed, k, base, source, new_head, weights)
            path = cache_dir("results") / f"{digest(key)}.json"
            if not refresh and path.is_file():
                run = load_run(path)
                if run is not None and (not gap or "train_accuracy" in run or "accuracy" not in run):
                    run["strategy"] = strategy.name  # the same recipe may have been cached under another name
                    runs.append(run)
                    _report(progress, run, i, len(todo))
                    continue
        run = _run_one(strategy, model, data, seed, k, base, source, new_head, meters, gap, callbacks)
        if run["history"].interrupted:  # stopped inside this run: never cache a partial run as a result
            raise KeyboardInterrupt(f"compare stopped during {strategy.name!r} (seed {seed}); the {len(runs)} "
                                    "finished runs are cached")
        if cache:
            save_run(path, key, run)
        runs.append(run)
        _report(progress, run, i, len(todo))
    return runs


def _run_one(strategy: Strategy, spec, data, seed: int, per_class, base: TrainConfig, source, new_head: bool,
             meters: dict, gap: bool = False, callbacks: Sequence[Any] = ()) -> dict:
    train = data.train if per_class is None else few_shot(data.train, per_class, seed=seed)
    meter = None
    if source is not None:  # the forgetting meter: the source task measured after every epoch
        if "meter" not in meters:
            pretrained = _load(spec, True, None, seed=0).to(pick_device(base.device))  # scored once, then dropped
            try:
                meters["meter"] = ForgettingMeter(pretrained, source, head="source" if new_head else "own")
            except ValueError as err:
                raise ValueError(f"source= scores the source task with the pre-trained model's own head, and this "
                                 f"model cannot ({err}). Use a model pre-trained as a classifier (the zoo's) or a "
                                 "language model, or leave source out.") from err
        meter = meters["meter"]
    model = _load(spec, strategy.pretrained, data.num_classes if new_head else None, seed)
    start = time.perf_counter()
    history = run_strategy(strategy, model, train, data.val, config=base, seed=seed, live=False,  # one table, no
                           callbacks=[*callbacks, *([meter] if meter is not None else [])])  # view per run
    if history.interrupted:
        return {"history": history}  # not a result: _run_all stops here
    elapsed = time.perf_counter() - start
    eval_batch = base.eval_batch_size or 2 * base.batch_size
    report = evaluate(model, data.test, batch_size=eval_batch)
    epochs = history.epochs
    total = sum(p.numel() for p in model.parameters())
    trainable = max((e.get("trainable", 0) for e in epochs), default=0)
    train_time = sum(e.get("time_s", 0.0) for e in epochs)
    run = {"strategy": strategy.name, "seed": seed, "per_class": per_class, "train_size": len(train),
           **{m: float(report[m]) for m in SCORES if isinstance(report.get(m), (int, float))},
           "trainable": trainable, "params": total, "trainable %": round(100.0 * trainable / max(1, total), 3),
           "time_s": round(elapsed, 3),
           "samples_per_s": round(sum(e.get("samples_per_s", 0) * e.get("time_s", 0.0) for e in epochs)
                                  / max(train_time, 1e-9), 1),
           "peak_memory_mb": max((e.get("peak_memory_mb", 0.0) for e in epochs), default=0.0),
           "path": history.info.get("path", "?"), "epochs": len(epochs), "device": history.info.get("device")}
    run.update(validation_scores(history))
    if gap and "accuracy" in report:  # the training examples as they are, against the test report
        scores = gap_against(model, train, report, batch_size=eval_batch)
        run.update(train_accuracy=scores["train_accuracy"], gap=scores["gap"])
    if meter is not None:
        # Forgetting (ftkit.experiments.analysis.forgetting): the pre-trained model's source score minus the fine-tuned one's
        # (for a language model, the rise in perplexity). Undefined for a model that did not start pre-trained.
        after = meter.measure(model)
        run[meter.key] = after
        change = after - meter.before if meter.key == "source_perplexity" else meter.before - after
        run["forgetting"] = change if strategy.pretrained else None
    run["report"] = {k: report[k] for k in ("classes", "confusion", "per_class") if k in report}
    run["history"] = history
    run["cached"] = False
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return run


def _starting_weights(spec, pretrained: bool) -> str:
    """The fingerprint of the model a comparison starts from (loaded once, then dropped)."""
    model = _load(spec, pretrained, None, seed=0)
    try:
        return weights_fingerprint(model)
    finally:
        del model
        release_memory()


def _load(spec, pretrained: bool, num_classes: int | None, seed: int) -> nn.Module:
    """A fresh model; the seed makes its new head (or, from scratch, all of it) the same every time."""
    seed_everything(seed)
    if isinstance(spec, str):
        return load_model(spec, num_classes=num_classes, pretrained=pretrained)
    try:
        takes_pretrained = "pretrained" in inspect.signature(spec).parameters
    except (TypeError, ValueError):
        takes_pretrained = False
    model = spec(pretrained=pretrained) if takes_pretrained else spec()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model= must be a catalogue name or a function returning a fresh nn.Module; "
                        f"{spec!r} returned {type(model).__name__}.")
    if not pretrained and not takes_pretrained:  # scratch: the same architecture, every layer re-initialised
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return model


# --- reporting ---------------------------------------------------------------------------------


def _report(progress, run: dict, i: int, n: int) -> None:
    if callable(progress):
        progress({k: v for k, v in run.items() if k not in ("history", "report")})
    elif progress:
        k = f", {run['per_class']}/class" if run["per_class"] is not None else ""
        score = next((f"{m} {run[m]:.4f}" for m in SHOWN if m in run), "")
        done = "cached" if run["cached"] else f"{run['time_s']:.1f} s"
        print(f"[{i}/{n}] {run['strategy']}, seed {run['seed']}{k}: {score} ({done})", flush=True)


# --- checks and names --------------------------------------------------------------------------


def _as_list(strategies) -> list[Strategy]:
    strategies = [strategies] if isinstance(strategies, Strategy) else list(strategies)
    bad = [s for s in strategies if not isinstance(s, Strategy)]
    if bad or not strategies:
        raise TypeError(f"compare takes ft.Strategy objects (ft.strategies.full(), ft.strategies.linear_probe() ...); got {bad or 'none'}.")
    names = [s.name for s in strategies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"Strategies need distinct names to be told apart in the results; {twice} appear twice. "
                         "Name them, e.g. ft.strategies.full(lr=1e-3, name='full, lr 1e-3') (ft.sweep names its variants).")
    return strategies


def _check_inputs(strategies, model, data, seeds) -> None:
    if not all(hasattr(data, part) for part in ("train", "val", "test")):
        raise TypeError(f"data must be a ft.Splits (train, val and test), e.g. ft.load_dataset('digits', model); "
                        f"got {type(data).__name__}.")
    if not isinstance(model, str) and not callable(model):
        raise TypeError(f"model must be a catalogue name or a function returning a fresh model, not a "
                        f"{type(model).__name__}: each run needs its own copy of the pre-trained start.")
    prepared = (getattr(data, "info", None) or {}).get("model")
    if isinstance(model, str) and prepared not in (None, model):
        raise ValueError(f"data was prepared for {prepared!r} but model is {model!r}; load it for the model you "
                         f"compare: ft.load_dataset({getattr(data, 'name', '...')!r}, {model!r}).")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of whole numbers, e.g. [0, 1, 2]; got {seeds!r}.")


def _model_name(model, model_key) -> str:
    return model if isinstance(model, str) else model_key or getattr(model, "__name__", "model")


def _data_name(data) -> str:
    return getattr(data, "name", "data")
