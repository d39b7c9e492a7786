"""Self-checks for lesson 03 (freezing and unfreezing).

Q1 and Q2 ask for a prediction that the same cell then measures; Q3 and Q4 ask for a
design (a learning-rate slice, an optimizer); Q5 asks for a whole recipe, which the check
trains over three seeds, judges on the validation split and then scores on the test split once.
"""
from __future__ import annotations

import math
import statistics
from functools import lru_cache

import torch

from ...core.errors import NonFiniteLossError
from ...data.catalogue import load_dataset
from ...data.labeled import few_shot
from ...experiments.compare import compare
from ...models.catalogue import load_model
from ...models.groups import layer_groups
from ...train.optim import group_lrs
from ._core import _MISSING_HINT, Verdict, check_choice, check_number, missing, not_a_recipe, right, wrong

MODEL, DATASET = "glyph-resnet", "digits"  # the lesson's offline setting
PER_CLASS, EPOCHS, BATCH, SEEDS = 5, 5, 16, (0, 1, 2)
Q3_RATES = {"block2": 1e-4, "block3": 1e-3, "head": 1e-2}  # the rates Q3 and Q4 ask for; stem and block1 frozen
KEEP_SOURCE, REACH_VAL = 0.80, 0.91  # Q5's targets: source-task accuracy kept, validation accuracy reached
MAX_EPOCHS = 10  # Q5: a recipe longer than this is refused before training (the check would take minutes)


@lru_cache(maxsize=1)
def _glyph_resnet_groups() -> tuple[tuple[str, int], ...]:
    """(name, parameters) of each layer group of glyph-resnet with a 10-class head, input to output."""
    return tuple((g.name, g.numel) for g in layer_groups(load_model(MODEL, num_classes=10)))


def q1(answer) -> Verdict:
    """Predict, then run: a backbone frozen with ``bn="train"``; what changes while the head trains?"""
    return check_choice(
        answer, "b",
        {"a": "its weight and bias (the affine parameters)",
         "b": "its running mean and variance (buffers, not parameters)",
         "c": "both",
         "d": "nothing"},
        hint="requires_grad=False stops the optimizer from changing parameters. Which numbers of a BatchNorm "
             "layer are not parameters, and are updated by the forward pass itself in train mode? The cell "
             "printed what it measured.",
        why="Its statistics adapt to the new data while its weights stay put; bn='frozen' keeps both fixed.")


def q2(answer) -> Verdict:
    """Predict, then run: ``epochs=6, unfreeze_every=2`` on glyph-resnet; in how many epochs does block2 train?"""
    names = [name for name, _ in _glyph_resnet_groups()]
    n, every, epochs = len(names), 2, 6
    # fit trains the top 1 + e // k groups in epoch e (0-based): group i trains when i >= n - (1 + e // k).
    expected = sum(names.index("block2") >= n - min(n, 1 + e // every) for e in range(epochs))
    return check_number(answer, expected,
                        hint="The head trains alone first, then one more group joins every 2 epochs, from the "
                             "top down. Count block2's place from the head in ft.layer_groups(model), then "
                             "compare your count with the trainable numbers the cell printed.",
                        why="Late groups in the list join first: the early, general layers train least, and last, "
                            "when the one-cycle schedule has brought the rate down.")


def _slice_rates(answer) -> dict[str, float] | None:
    if not isinstance(answer, slice) or answer.step is not None:
        return None
    try:
        rates = group_lrs(answer, len(_glyph_resnet_groups()))
    except (TypeError, ValueError):
        return None
    return dict(zip((name for name, _ in _glyph_resnet_groups()), rates))


def q3(answer) -> Verdict:
    """Design: after ``ft.freeze_to(net, 2)``, which ``lr=slice(lo, hi)`` gives block2 1e-4, block3 1e-3, head 1e-2?"""
    if missing(answer):
        return wrong(_MISSING_HINT)
    rates = _slice_rates(answer)
    if rates is None:
        return wrong(f"Answer with a slice of two numbers, slice(lo, hi) with 0 < lo <= hi (got {answer!r}).")
    got = ", ".join(f"{name} {rates[name]:.1e}" for name in Q3_RATES)
    if all(math.isclose(rates[name], lr, rel_tol=0.02) for name, lr in Q3_RATES.items()):
        return right(f"Your slice gives {got}. The slice is spread over all five groups, frozen ones included: "
                     "the stem and block1 get rates too, which they do not use while frozen.")
    return wrong(f"Your slice gives {got}. ft.group_lrs(slice(lo, hi), 5) spreads the rates over all five "
                 "groups, frozen ones included, by the same factor from one group to the next; the head gets hi.")


def q4(answer) -> Verdict:
    """Design in plain PyTorch: an optimizer training block2 at 1e-4, block3 at 1e-3, the head at 1e-2, nothing else."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    if not isinstance(answer, torch.optim.Optimizer):
        return wrong(f"Answer with a torch optimizer, e.g. torch.optim.AdamW([...]) (got {type(answer).__name__}).")
    groups = layer_groups(load_model(MODEL, num_classes=10))
    # Compared by shape and rate: the check cannot see the learner's model, only its tensors.
    want = sorted((tuple(p.shape), Q3_RATES[g.name]) for g in groups if g.name in Q3_RATES for p in g.params)
    trains = sorted((tuple(p.shape), pg["lr"]) for pg in answer.param_groups for p in pg["params"] if p.requires_grad)
    if len(trains) != len(want) or not all(
            a == b and math.isclose(x, y, rel_tol=1e-6) for (a, x), (b, y) in zip(trains, want)):
        per_rate: dict[float, int] = {}
        for shape, lr in trains:
            per_rate[lr] = per_rate.get(lr, 0) + math.prod(shape)
        got = ", ".join(f"{n:,} at {lr:.0e}" for lr, n in sorted(per_rate.items())) or "none"
        return wrong(f"Your optimizer trains {sum(per_rate.values()):,} parameters ({got}). Give it one dict "
                     "per layer group that trains, {'params': group.params, 'lr': ...}, with the groups from "
                     "ft.layer_groups(net) of glyph-resnet with 10 classes; leave the frozen groups out "
                     "(or set their requires_grad to False).")
    return right("One parameter group per layer group, each with its own rate: what ft.fit builds from "
                 "ft.freeze_to(net, 2) and lr=slice(...) (with weight decay split off for biases and norms).")


@lru_cache(maxsize=1)
def _task():
    """The lesson's offline data (a Splits) and the source task's 246 test images, as in section 8."""
    data = load_dataset(DATASET, MODEL, seed=0)
    source = few_shot(load_dataset("zoo-source", MODEL).test, per_class=3, seed=0)
    return data, source


def q5(answer) -> Verdict:
    """Design a recipe in which every group trains, keeping >= 80% on the source task and >= 91% on validation."""
    problem = not_a_recipe(answer, "ft.Strategy('mine', lr=...), a ready-made one from ft.strategies, or one "
                                   "with phases=(ft.Phase(...), ...)")
    if problem is not None:
        return problem
    if not answer.pretrained:
        return wrong("This recipe starts from random weights, so there is no source task to keep. Start from the "
                     "pre-trained weights (pretrained=True, the default).")
    epochs = sum(answer.phase_epochs(EPOCHS))
    if epochs > MAX_EPOCHS:
        return wrong(f"Your recipe runs {epochs} epochs; keep it to {MAX_EPOCHS} at most, so that "
                     "the check trains it three times in seconds.")
    data, source = _task()
    try:
        result = compare([answer], model=MODEL, data=data, per_class=PER_CLASS, seeds=list(SEEDS), epochs=EPOCHS,
                         batch_size=BATCH, source=source, progress=False)
    except NonFiniteLossError:
        return wrong("Your recipe's training loss stopped being a number: some rate is far too high for these "
                     "weights (section 6: a step moves each weight by about its learning rate).")
    runs = result.runs
    if any(r["trainable"] < r["params"] for r in runs):
        most = max(r["trainable"] for r in runs)
        return wrong(f"At most {most:,} of the network's {runs[0]['params']:,} parameters ever trained: some layer "
                     "group never did. This exercise asks for a recipe in which every group adapts to handwriting "
                     "at some point; what does your recipe freeze, and for how long?")
    val = statistics.fmean(r["val_accuracy"] for r in runs)
    kept = statistics.fmean(r["source_accuracy"] for r in runs)
    per_seed = lambda key: ", ".join(format(r[key], ".1%") for r in runs)
    numbers = (f"Validation accuracy {val:.1%}, source task kept {kept:.1%} (means over seeds "
               f"{', '.join(map(str, SEEDS))}; per seed {per_seed('val_accuracy')} and "
               f"{per_seed('source_accuracy')}). ")
    if kept < KEEP_SOURCE:
        return wrong(numbers + f"The body moved too far to keep {KEEP_SOURCE:.0%} of the source task. Look at how far "
                     "each group's weights can move in your recipe (section 6: about one learning rate per step) "
                     "and at what section 8 measured protects them.")
    if val < REACH_VAL:
        return wrong(numbers + f"The new task needs {REACH_VAL:.0%} on validation. Does the head get a rate and "
                     "enough steps to learn from its random start, and does the body get enough to adapt?")
    test = statistics.fmean(r["accuracy"] for r in runs)
    return right(numbers + f"Chosen on validation; its test accuracy, reported once: {test:.1%}.")


__all__ = ["q1", "q2", "q3", "q4", "q5"]
