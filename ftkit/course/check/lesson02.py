"""Self-checks for lesson 02 (transfer strategies: scratch, linear probe, partial, full; data efficiency).

Q2 and Q3 are predict-then-run: the check measures the answer itself, with the lesson's offline
setting (glyph-resnet on the digits, 1 example per class, 8 epochs, seeds 0-2), so it agrees with
the cell the learner ran; ``ft.compare`` caches every run, so after that cell the check is instant.
Q4 trains the learner's own recipe and judges it on the validation split.
"""
from __future__ import annotations

from functools import lru_cache

from ...data.catalogue import load_dataset
from ...experiments import strategies as recipes
from ...experiments.compare import compare
from ...experiments.strategies import Strategy
from ...models.catalogue import load_model
from ...tuning.freeze import freeze_to
from ._core import _MISSING_HINT, Verdict, check_choice, check_number, missing, not_a_recipe, right, wrong

# The lesson's offline setting (sections 2 and 6): what the predict-then-run questions measure.
MODEL, PER_CLASS, SEEDS = "glyph-resnet", 1, (0, 1, 2)
SETTINGS = {"epochs": 8, "batch_size": 16, "eval_batch_size": 512}
SAME = 0.03  # "about the same": test accuracies within 3 points of each other
Q4_MARGIN = 0.03  # Q4's recipe must beat partial(2, lr=1e-3) on validation by this much


@lru_cache(maxsize=1)
def _partial2_trainable() -> int:
    model = freeze_to(load_model("glyph-resnet", num_classes=10), -2)  # what ft.strategies.partial(2) trains
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@lru_cache(maxsize=1)
def _digits():
    return load_dataset("digits", MODEL, seed=0, val_size=100)


def _measure(strategy: Strategy) -> dict:
    """Mean test and validation accuracy over SEEDS with 1 example per class (cached runs when the lesson ran them)."""
    table = compare([strategy], model=MODEL, data=_digits(), per_class=PER_CLASS, seeds=list(SEEDS), progress=False,
                    **SETTINGS)
    row = table.rows[0]
    return {"accuracy": row["accuracy"], "val_accuracy": row["val_accuracy"]}


def _direction(a: float, b: float) -> str:
    """'higher', 'lower' or 'same' (within SAME) for a against b."""
    return "same" if abs(a - b) <= SAME else ("higher" if a > b else "lower")


_DIRECTIONS = {"higher": "higher, by more than 3 points", "lower": "lower, by more than 3 points",
               "same": "about the same (within 3 points)"}


def q1(answer) -> Verdict:
    """How many parameters train in partial-2 (glyph-resnet with a 10-class head)?"""
    return check_number(answer, _partial2_trainable(),
                        hint="partial(2) trains the last two layer groups, the head included. Try "
                             "ft.freeze_to(model, -2) on a fresh glyph-resnet with 10 classes, then "
                             "ft.trainable_summary(model).",
                        why="Most of glyph-resnet's parameters sit in its last block: 'partial' is not 'small' here. "
                            "It is cheaper per step than full fine-tuning because backpropagation stops at block3.")


def q2(answer) -> Verdict:
    """Predict, then run: the linear probe at 1e-3, 1 example per class, against full fine-tuning at 1e-3."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    probe = _measure(recipes.linear_probe(lr=1e-3))["accuracy"]
    full = _measure(recipes.full(lr=1e-3))["accuracy"]
    return check_choice(
        answer, _direction(probe, full), _DIRECTIONS,
        hint="Count the steps: 10 images in batches of 16, 8 epochs, and one-cycle starts at 1/25 of the peak rate. "
             "How far can a layer that starts from random weights get at 1e-3 in that many steps? And in full "
             "fine-tuning, what else can move besides the head?",
        why=f"Measured (mean over seeds 0-2): the probe at 1e-3 {probe:.1%}, full fine-tuning at 1e-3 {full:.1%}. "
            "At this rate the head alone learns little in 8 steps, so most of full fine-tuning's accuracy came "
            "from its pre-trained layers changing, not from its head.")


def q3(answer) -> Verdict:
    """Predict, then run: every layer at 1e-2 against the head at 1e-2 and the rest at 1e-3 (1 example per class)."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    everything = _measure(recipes.full(lr=1e-2))["accuracy"]
    head_only = _measure(recipes.full(lr=slice(1e-2)))["accuracy"]
    return check_choice(
        answer, _direction(everything, head_only), _DIRECTIONS,
        hint="The head starts from random weights; the other layers start from weights that already compute good "
             "features. What does a step ten times larger do to each of them, while the head is still wrong?",
        why=f"Measured (mean over seeds 0-2): every layer at 1e-2 {everything:.1%}; the head at 1e-2 and the rest "
            f"at 1e-3 {head_only:.1%}. A rate that suits a new layer is too large for the pre-trained ones here: "
            "that is why recipes give layer groups different rates (discriminative learning rates, lessons 03-04).")


def q4(answer) -> Verdict:
    """Design: a recipe training partial-2's groups for 8 epochs that beats partial(2, lr=1e-3) on validation."""
    problem = not_a_recipe(answer, "ft.strategies.partial(2, lr=...)")
    if problem is not None:
        return problem
    if not answer.pretrained or answer.freeze != -2 or answer.phases or answer.unfreeze_every \
            or answer.epochs not in (None, SETTINGS["epochs"]):
        return wrong("Keep what partial(2) trains and for how long: pre-trained weights, the last two layer groups "
                     "(freeze=-2, no phases, no gradual unfreezing) and 8 epochs (epochs=None). Change how they train.")
    try:
        yours = _measure(answer)
    except ValueError as err:  # e.g. a factory without a key: its results cannot be cached
        return wrong(f"The recipe could not run: {err}")
    base = _measure(recipes.partial(2, lr=1e-3))
    lead = yours["val_accuracy"] - base["val_accuracy"]
    if lead >= Q4_MARGIN:
        return right(f"On validation (mean over seeds 0-2): {yours['val_accuracy']:.1%} against "
                     f"{base['val_accuracy']:.1%} for partial(2, lr=1e-3). Chosen on validation, its test accuracy, "
                     f"reported once: {yours['accuracy']:.1%} ({base['accuracy']:.1%} for partial(2, lr=1e-3)).")
    return wrong(f"On validation (mean over seeds 0-2) your recipe scored {yours['val_accuracy']:.1%}, "
                 f"{100 * lead:+.1f} points from partial(2, lr=1e-3); it needs +{100 * Q4_MARGIN:.0f}. Which of the "
                 "two groups starts from random weights, and what rate did that kind of layer get in the linear "
                 "probe? Section 6 shows how to give one group a different rate from the others.")


__all__ = ["q1", "q2", "q3", "q4"]
