"""Self-checks for lesson 04 (learning rates and optimizers).

Q1 and Q2 ask for a prediction that the cell after it measures; the checks measure the answer
themselves, with the lesson's offline setting (glyph-resnet on the digits, 10 images per class,
5 epochs, seeds 0-2), so they agree with the cell the learner ran; ``ft.compare`` caches every
run, so after that cell the check is instant. Q3 asks for a recipe, which the check trains over
three seeds, judges on the validation split and the source task, and then scores on the test
split once. Q4 asks for a schedule written as a plain function of the step, for ``LambdaLR``.
"""
from __future__ import annotations

import math
import statistics
from functools import lru_cache

from ...core.errors import NonFiniteLossError
from ...data.catalogue import load_dataset
from ...data.labeled import few_shot
from ...experiments import strategies as recipes
from ...experiments.compare import compare
from ...experiments.strategies import Strategy
from ._core import _MISSING_HINT, Verdict, check_choice, check_number, missing, not_a_recipe, right, wrong

# The lesson's offline setting (sections 3 and 6): what the questions measure.
MODEL, DATASET, PER_CLASS, EPOCHS, SEEDS = "glyph-resnet", "digits", 10, 5, (0, 1, 2)
BIG_BATCH = 128  # section 6's big batch: all 100 training images in every step
SAME = 0.03  # "about the same": validation accuracies within 3 points of each other
Q3_VAL, Q3_KEEP, Q3_MAX_STEPS = 0.95, 0.70, 20  # Q3's targets: validation reached, source kept, steps allowed
Q4_TOTAL, Q4_WARMUP = 100, 10  # Q4's schedule: 100 steps, 10 of warmup


def q1(answer) -> Verdict:
    """Predict, then run: 100 images, ``batch_size=16, accumulate=4``, 5 epochs: how many optimizer steps?"""
    batches = math.ceil(PER_CLASS * 10 / 16)  # per epoch, the last, smaller one included
    return check_number(answer, EPOCHS * math.ceil(batches / 4),
                        hint="Count the batches of 16 in one epoch first (the last, smaller one counts). fit steps "
                             "after every 4 of them, and once more after the last batches of the epoch even when "
                             "fewer than 4 are left. Then multiply by the epochs, and compare with what the cell "
                             "measured.",
                        why="Accumulating 4 batches makes each step use the gradients of up to 64 images, and the "
                            "steps about 4 times fewer: as many as batch_size=64 takes, in the memory of a batch of "
                            "16.")


@lru_cache(maxsize=1)
def _task():
    """The lesson's offline data (a Splits) and the source task's 164 test images, as in section 3."""
    data = load_dataset(DATASET, MODEL, seed=0)
    source = few_shot(load_dataset("zoo-source", MODEL).test, per_class=2, seed=0)
    return data, source


def _measure(strategy: Strategy, source: bool = False) -> dict:
    """Means over SEEDS (validation, test, source task) and the most steps a run took.

    The runs are the lesson's own, from compare's cache, when the lesson has run them.
    """
    data, source_set = _task()
    table = compare([strategy], model=MODEL, data=data, per_class=PER_CLASS, seeds=list(SEEDS), epochs=EPOCHS,
                    batch_size=BIG_BATCH, eval_batch_size=512, val_every=EPOCHS,
                    source=source_set if source else None, progress=False)
    runs = table.runs
    out = {"val_accuracy": statistics.fmean(r["val_accuracy"] for r in runs),
           "accuracy": statistics.fmean(r["accuracy"] for r in runs),
           "steps": max(len(r["history"].steps) for r in runs)}
    if source:
        out["source_accuracy"] = statistics.fmean(r["source_accuracy"] for r in runs)
    return out


_DIRECTIONS = {"higher": "higher, by more than 3 points", "lower": "lower, by more than 3 points",
               "same": "about the same (within 3 points)"}


def q2(answer) -> Verdict:
    """Predict, then run: batch 128 for 5 epochs at 3e-3 against the same at 1e-3 (validation accuracy)."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    slow = _measure(recipes.full(lr=1e-3))["val_accuracy"]
    fast = _measure(recipes.full(lr=3e-3))["val_accuracy"]
    measured = "same" if abs(fast - slow) <= SAME else ("higher" if fast > slow else "lower")
    return check_choice(
        answer, measured, _DIRECTIONS,
        hint="A batch of 128 here holds all 100 images, so its gradient is the same every epoch, not a noisy "
             "estimate. With only 5 steps, how far can steps of 1e-3 take AdamW from the pre-trained weights, "
             "compared with section 3's runs, which took 35?",
        why=f"Measured (validation, mean over seeds 0-2): batch 128 at 1e-3 {slow:.1%}, at 3e-3 {fast:.1%}. A "
            "gradient over more examples is less noisy, so a larger step along it can still be safe: raising the "
            "rate with the batch is the 'linear scaling rule' of Goyal et al. (2017). Too large, and section 3's "
            "damage returns.")


def q3(answer) -> Verdict:
    """Design: batch 128, at most 20 steps, >= 95% on validation while keeping >= 70% of the source task."""
    problem = not_a_recipe(answer, "ft.strategies.full(lr=..., epochs=...)")
    if problem is not None:
        return problem
    settings = dict(answer.train)
    if (not answer.pretrained or answer.freeze is not None or answer.phases or answer.unfreeze_every
            or answer.adapter is not None or {"batch_size", "accumulate"} & set(settings)):
        return wrong("Keep the question's setting: every layer trains from the pre-trained weights (no freeze, "
                     "phases, gradual unfreezing or adapter) in batches of 128, which the check sets (no "
                     "batch_size or accumulate in train=). Change the rate, the epochs, the schedule or the "
                     "optimizer.")
    epochs = answer.epochs or EPOCHS
    if epochs > Q3_MAX_STEPS:
        return wrong(f"With batch 128, each epoch of the 100 images is one step, so epochs={epochs} takes {epochs} "
                     f"steps; the budget is {Q3_MAX_STEPS}.")
    try:
        got = _measure(answer, source=True)
    except NonFiniteLossError:
        return wrong("Your recipe's training loss stopped being a number: its rate is far too high for these "
                     "weights (section 3's sweep stopped at 1e-2, and lost most of the source task there).")
    numbers = (f"Validation accuracy {got['val_accuracy']:.1%}, source task kept {got['source_accuracy']:.1%} "
               f"(means over seeds 0-2), in {got['steps']} steps. ")
    if got["steps"] > Q3_MAX_STEPS:
        return wrong(numbers + f"That is more than {Q3_MAX_STEPS} steps.")
    if got["val_accuracy"] < Q3_VAL:
        return wrong(numbers + f"The new task needs {Q3_VAL:.0%}. Section 6's batch 128 at 1e-3 fell short in "
                     "5 steps: it needs more steps, or larger ones (Q2), within the budget.")
    if got["source_accuracy"] < Q3_KEEP:
        return wrong(numbers + f"The source task needs {Q3_KEEP:.0%}. How far the pre-trained weights move grows "
                     "with both the rate and the number of steps (section 3): trade one against the other.")
    return right(numbers + f"Chosen on validation and the source task; its test accuracy, reported once: "
                 f"{got['accuracy']:.1%}.")


def _q4_expected(step: int) -> float:
    if step < Q4_WARMUP:
        return (step + 1) / (Q4_WARMUP + 1)
    return (Q4_TOTAL - step) / (Q4_TOTAL - Q4_WARMUP)


def q4(answer) -> Verdict:
    """Plain PyTorch: the LambdaLR factor of 10 warmup steps, then a straight line from 1 (step 10) to 0 (step 100)."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    if not callable(answer):
        return wrong(f"Answer with a function of the step number, def answer(step): return ... "
                     f"(got {type(answer).__name__}).")
    try:
        got = [float(answer(step)) for step in range(Q4_TOTAL)]
    except Exception as err:  # the learner's code: say what went wrong, in words
        return wrong(f"Your function raised {type(err).__name__}: {err}. It is called with step = 0, 1, ..., 99 "
                     "and must return a number.")
    expected = map(_q4_expected, range(Q4_TOTAL))
    bad = [s for s, (g, e) in enumerate(zip(got, expected)) if not math.isclose(g, e, abs_tol=1e-9)]
    if not bad:
        return right("torch.optim.lr_scheduler.LambdaLR(optimizer, answer) applies it: the optimizer's rate at "
                     "each step is the peak times your factor. ULMFiT's slanted triangular rates have this "
                     "shape, a short rise and a long, straight fall.")
    first = bad[0]
    if first < Q4_WARMUP:
        return wrong(f"At step {first} your function returns {got[first]:.4g}. During the warmup, step 0 gives "
                     "1/11 and each step adds another 1/11, so step 9 gives 10/11 and no step has a rate of 0.")
    return wrong(f"At step {first} your function returns {got[first]:.4g}. After the warmup the factor falls in a "
                 "straight line: 1 at step 10, and it would reach 0 at step 100, so half way, at step 55, it is 0.5.")


__all__ = ["q1", "q2", "q3", "q4"]
