"""Self-checks for lesson 05 (regularisation).

Q1 and Q2 ask for a prediction that is then measured: Q1 on the two-weight toy of section 3
(the lesson's cell measures it, and so does the check), Q2 by training Li et al.'s L2-SP strength
on the lesson's task. Q3 asks for a whole recipe, which the check trains over the lesson's seeds,
judges on the validation split and then scores on the test split once. Q4 is about choosing on
validation. Q2 and Q3 train with the lesson's own settings, so the baseline's runs come from the
result cache when the lesson has run.
"""
from __future__ import annotations

import dataclasses
import statistics
from functools import lru_cache

import torch

from ...core.errors import NonFiniteLossError
from ...data.catalogue import load_dataset
from ...data.labeled import few_shot
from ...experiments.compare import compare
from ...experiments.strategies import L2SPFactory, Strategy
from ._core import _MISSING_HINT, Verdict, check_choice, missing, not_a_recipe, one_of, right, wrong

# The lesson's offline setting (lessons/05_regularisation.ipynb, sections 1, 4 and 5).
MODEL = "glyph-resnet"
TASK = dict(chars="0123456789", per_class=150, rotation=20, shift=0.12, scale=(0.5, 0.9), noise=0.05)
PER_CLASS, EPOCHS, SEEDS = 5, 15, (0, 1, 2, 3)
RECIPE = dict(lr=3e-3, epochs=EPOCHS, schedule="constant")
SETTINGS = dict(per_class=PER_CLASS, seeds=list(SEEDS), gap=True, batch_size=10, optimizer="adamw",
                eval_batch_size=300, progress=False)
Q3_MARGIN = 0.05  # Q3: mean validation accuracy at least this far above the baseline's


def two_weights(optimizer, penalty: float = 0.0, gradients=(100.0, 0.001), steps: int = 100) -> torch.Tensor:
    """Section 3's toy: weights start at 1; the data loss's gradient is ``gradients``, flipping sign every step.

    ``penalty`` adds an L2 term ``penalty / 2 * w**2`` to the loss. Returns the weights after ``steps``.
    """
    g = torch.tensor(gradients, dtype=torch.float32)
    w = torch.ones(len(g), requires_grad=True)
    opt = optimizer([w])
    for step in range(steps):
        loss = (w * g).sum() * (-1) ** step + penalty / 2 * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach()


def _q1_measured() -> dict[str, float]:
    """What is left of a weight after 100 steps at lr 3e-3, relative to the same run without a penalty."""
    adam = lambda params: torch.optim.Adam(params, lr=3e-3)
    adamw = lambda params: torch.optim.AdamW(params, lr=3e-3, weight_decay=0.1)
    gradients = (100.0, 0.001, 1.0)
    plain = two_weights(adam, 0.0, gradients)
    l2, decayed = two_weights(adam, 0.1, gradients) / plain, two_weights(adamw, 0.0, gradients) / plain
    return {"large": float(l2[0]), "small": float(l2[1]), "decoupled": float(decayed[2]), "size 1": float(l2[2])}


def q1(answer) -> Verdict:
    """Predict, then run: Adam with an L2 penalty of 0.1, a weight whose gradients have size 1: what is left?"""
    if missing(answer):
        return wrong(_MISSING_HINT)
    m = _q1_measured()
    kept = m["size 1"]
    # The options describe what the toy measures: (a) the weight with gradients of 100 under the L2 penalty,
    # (b) the one with gradients of 0.001, (c) AdamW's decoupled decay; the right one is the closest.
    options = {"a": m["large"], "b": m["small"], "c": m["decoupled"]}
    expected = min(options, key=lambda k: abs(options[k] - kept))
    return check_choice(
        answer, expected,
        {"a": "about 0.9997, as much as the weight with gradients of 100",
         "b": "about 0.72, as little as the weight with gradients of 0.001",
         "c": "about 0.97, what AdamW's decay leaves of every weight"},
        hint="Adam divides each step by the size of the whole gradient, data gradient plus the penalty's "
             "0.1 * w. Compare 0.1 * w with a data gradient of 1, of 100 and of 0.001: which term sets the "
             "size each time, and how far does the step then move w? The cell printed what it measured.",
        why=f"Measured: {kept:.3f}. The penalty's gradient (0.1 * w) is about a tenth of the data gradient, so "
            "each step shrinks w by about lr * 0.1 * w, as AdamW's decay (lr * weight_decay * w) would: L2 under "
            "Adam acts like decoupled decay only for weights whose gradients happen to have this size.")


@lru_cache(maxsize=1)
def _data():
    """The lesson's offline data: the rendered digits, with 5 validation images per class."""
    data = load_dataset("glyphs", MODEL, seed=0, **TASK)
    return dataclasses.replace(data, val=few_shot(data.val, per_class=PER_CLASS, seed=0))


def _baseline() -> Strategy:
    return Strategy("baseline", train={"weight_decay": 0.0}, **RECIPE)


def _runs(result, name: str) -> list[dict]:
    return [r for r in result.runs if r["strategy"] == name]


def q2(answer) -> Verdict:
    """Predict, then run: does L2-SP with Li et al.'s alpha = 0.1 shrink the mean gap by >= 2 points here?"""
    said = one_of(answer, ("yes", "no"))
    if isinstance(said, Verdict):
        return said
    paper = Strategy("L2-SP alpha 0.1", regularizers=(L2SPFactory(alpha=0.1),), train={"weight_decay": 0.0},
                     **RECIPE)
    result = compare([_baseline(), paper], model=MODEL, data=_data(), **SETTINGS)
    change = [b["gap"] - r["gap"] for b, r in zip(_runs(result, "baseline"), _runs(result, paper.name))]
    mean = statistics.fmean(change)
    measured = (f"Measured: the gap changed by {' '.join(f'{100 * c:+.1f}' for c in change)} points over seeds "
                f"{', '.join(map(str, SEEDS))} (positive: smaller), {100 * mean:+.1f} on average. ")
    truth = "yes" if mean >= 0.02 else "no"
    if said == truth:
        return right(measured + ("Under AdamW, alpha sets the penalty's share of each weight's gradient, not a step "
                                 "size; at 0.1 that share was too small to shrink the gap here. A value tuned with "
                                 "SGD does not carry over: choose it on validation." if truth == "no"
                                 else "Here it was strong enough to act."))
    return wrong(measured + "Section 3's toy shows how much a penalty of 0.1 does under Adam to a weight whose "
                 "data gradients are large, and what it takes for the penalty to count.")


def q3(answer) -> Verdict:
    """Design a recipe whose mean validation accuracy beats the baseline's by at least 5 points."""
    problem = not_a_recipe(answer, "ft.Strategy('mine', augment=..., regularizers=..., train=..., **recipe), "
                                   "as in section 5")
    if problem is not None:
        return problem
    if not answer.pretrained:
        return wrong("This recipe starts from random weights; start from the pre-trained ones (pretrained=True, "
                     "the default), as every recipe of this lesson does.")
    epochs = sum(answer.phase_epochs(EPOCHS))
    if epochs > EPOCHS:
        return wrong(f"Your recipe runs {epochs} epochs; keep to the lesson's {EPOCHS}, so that it is compared with "
                     "the baseline at the same number of steps.")
    if answer.name == "baseline":
        return wrong("Give your recipe its own name: 'baseline' is the recipe it is compared with.")
    try:
        result = compare([_baseline(), answer], model=MODEL, data=_data(), **SETTINGS)
    except NonFiniteLossError:
        return wrong("Your recipe's training loss stopped being a number: a learning rate far too high for these "
                     "weights. The lesson's recipes train at 3e-3.")
    except (ValueError, TypeError) as err:  # a setting the recipe cannot use, or a factory without a stable name
        return wrong(f"The check could not train your recipe: {err}")
    base, mine = _runs(result, "baseline"), _runs(result, answer.name)
    val = statistics.fmean(r["val_accuracy"] for r in mine)
    base_val = statistics.fmean(r["val_accuracy"] for r in base)
    per_seed = ", ".join(format(r["val_accuracy"], ".0%") for r in mine)
    numbers = (f"Validation accuracy {val:.1%} against the baseline's {base_val:.1%} (means over seeds "
               f"{', '.join(map(str, SEEDS))}; yours per seed: {per_seed}). ")
    if val < base_val + Q3_MARGIN:
        return wrong(numbers + f"The target is {Q3_MARGIN:.0%} above the baseline. In section 5 each knob was "
                     "turned alone, and they act in different ways (new versions of the images; a pull towards the "
                     "pre-trained weights), so two of them may add up. A knob's strength is a choice too, made on "
                     "validation: section 3 showed that what a penalty's strength does depends on the optimizer "
                     "and on everything else that moves the weights.")
    test, base_test = (statistics.fmean(r["accuracy"] for r in runs) for runs in (mine, base))
    return right(numbers + f"Chosen on validation; its test accuracy, reported once: {test:.1%} (baseline "
                 f"{base_test:.1%}).")


def q4(answer) -> Verdict:
    """Why report the test accuracy of a recipe chosen on validation, not the best test accuracy?"""
    return check_choice(
        answer, "b",
        {"a": "nothing is wrong: the test split steered no training run",
         "b": "the number is optimistic: the choice used the test split, so it favours whichever recipe was "
              "lucky on those test images",
         "c": "test accuracy is always lower than validation accuracy",
         "d": "compare cannot score early stopping on the test split"},
        hint="Choosing is also a kind of fitting. If six recipes were equally good, which one would come out on "
             "top of the test split, and would it do as well on the next 300 images?",
        why="The best of several noisy scores is biased upwards. Choose on validation, then the test score of "
            "the one choice is a fair estimate; early stopping chose its epoch on validation for the same reason.")


__all__ = ["q1", "q2", "q3", "q4"]
