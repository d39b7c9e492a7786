"""Self-checks for lesson 09 (evaluation and tuning).

Q1 reads a confusion matrix (``CONFUSION``, fixed here and shown in the lesson). Q2 asks for a
prediction that the check then measures by simulation: how far the best of many equally good
recipes' test scores sits above their true accuracy. Q3 asks for a prediction about a model that
always answers the majority class, measured with the same per-class formulas as the lesson. Q4 is
about which ways of reporting a score are fair. None of them trains a network.
"""
from __future__ import annotations

import torch

from ._core import _MISSING_HINT, Verdict, as_number, check_choice, check_number, missing, right, wrong

# Q1's confusion matrix: rows are the true classes, columns the predicted ones.
CLASSES = ("cat", "dog", "fox")
CONFUSION = ((40, 8, 2),
             (5, 45, 0),
             (10, 2, 8))

# Q2's simulation: RECIPES recipes, each truly ACCURACY accurate, scored on TEST_SIZE test images.
RECIPES, ACCURACY, TEST_SIZE, TRIALS = 20, 0.95, 300, 2000

# Q3's test set: MAJORITY images of class A and MINORITY of class B; the model always answers A.
MAJORITY, MINORITY = 90, 10


def per_class_scores(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall and F1 of each class from a confusion matrix (rows: true, columns: predicted)."""
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    hits = confusion.diag()
    precision = hits / confusion.sum(0).clamp(min=1)  # of the examples predicted as the class, the right ones
    recall = hits / confusion.sum(1).clamp(min=1)  # of the examples of the class, those found
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": hits.sum() / confusion.sum()}


def q1(answer) -> Verdict:
    """The recall of 'fox' in CONFUSION."""
    scores = per_class_scores(torch.tensor(CONFUSION))
    fox = CLASSES.index("fox")
    recall, precision = float(scores["recall"][fox]), float(scores["precision"][fox])
    value = as_number(answer)
    if value is not None and abs(value - precision) < 1e-3 and abs(precision - recall) > 1e-3:
        return wrong("That is the share of the 'fox' predictions that were right: the precision, read down the "
                     "column. Recall starts from the true foxes: read along the row.")
    if value is not None and value > 1:
        return wrong("Give the recall as a fraction between 0 and 1 (e.g. 0.25 for 25%).")
    return check_number(answer, recall, abs_tol=0.005,
                        hint="Recall asks: of all the images that really are foxes, how many did the model call "
                             "'fox'? The true class is the row. Divide the diagonal cell by the row's total.",
                        why="8 of the 20 foxes were found: recall 0.4. Its precision is 8 / 10 = 0.8: when the model "
                            "says 'fox' it is usually right, but it misses most foxes (it calls them cats).")


def simulate_best_of(recipes: int = RECIPES, accuracy: float = ACCURACY, test_size: int = TEST_SIZE,
                     trials: int = TRIALS, seed: int = 0) -> float:
    """How far, on average, the best test score of ``recipes`` equally good recipes lies above their accuracy.

    Each recipe gets each of ``test_size`` images right with probability ``accuracy``, independently.
    """
    generator = torch.Generator().manual_seed(seed)
    right_answers = torch.rand(trials, recipes, test_size, generator=generator) < accuracy
    best = right_answers.float().mean(-1).max(-1).values  # the best recipe's test accuracy, per trial
    return float(best.mean()) - accuracy


_Q2_OPTIONS = {"a": "within half a point of 95%: equally good recipes score about the same",
               "b": "between 1 and 4 points above 95%",
               "c": "more than 4 points above 95%"}


def q2(answer) -> Verdict:
    """Predict, then run: the best test score of 20 equally good recipes, against their true accuracy."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    above = 100 * simulate_best_of()
    expected = "a" if above < 0.5 else "b" if above <= 4 else "c"
    measured = (f"Simulated over {TRIALS:,} trials: the best of {RECIPES} recipes scored {above:.1f} points above "
                f"their true {ACCURACY:.0%} on average. ")
    verdict = check_choice(
        answer, expected, _Q2_OPTIONS,
        hint="Each recipe's test score is its true accuracy plus luck: on 300 images one score varies by about "
             "1.3 points (the binomial spread). The best of 20 lucky draws is not a typical draw.",
        why="The best of many noisy scores is the luckiest one: choosing by a score makes that score optimistic.")
    if verdict.message.startswith("Answer with"):
        return verdict
    return Verdict(verdict.ok, measured + verdict.message)


def q3(answer) -> Verdict:
    """Predict, then run: accuracy and macro-averaged recall of a model that always answers the majority class."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2 or any(as_number(a) is None for a in answer):
        return wrong(f"Answer with two numbers, (accuracy, macro recall), as fractions; got {answer!r}.")
    accuracy, recall = (float(as_number(a)) for a in answer)
    scores = per_class_scores(torch.tensor([[MAJORITY, 0], [MINORITY, 0]]))
    want_accuracy, want_recall = float(scores["accuracy"]), float(scores["recall"].mean())
    ok_accuracy = abs(accuracy - want_accuracy) < 0.005
    ok_recall = abs(recall - want_recall) < 0.005
    if ok_accuracy and ok_recall:
        return right(f"Accuracy {want_accuracy:.0%}, macro recall {want_recall:.0%}: recall 100% on A, 0% on B. "
                     "Accuracy counts images, so the common class dominates it; a macro average counts classes, "
                     "so the class the model ignores pulls it down.")
    if ok_accuracy:
        return wrong("The accuracy is right. Macro recall is the plain mean of the classes' recalls: what share "
                     "of the A images does the model find, and what share of the B images?")
    return wrong("Accuracy is the share of all 100 test images answered right. The model answers A every time: "
                 "which images does it get right?")


_Q4_OPTIONS = {
    "a": "choose the learning rate on validation, then report that choice's test accuracy once",
    "b": "train with 10 learning rates and report the best of their test accuracies",
    "c": "choose the learning rate on validation, retrain on train + validation with it, report its test accuracy once",
    "d": "stop training early when the test accuracy stops improving, and report that test accuracy",
    "e": "look at the test accuracy, change the augmentation, and report the new test accuracy when it is higher",
}


def q4(answer) -> Verdict:
    """Which reports are fair estimates of accuracy on new images? (Several may be.)"""
    return check_choice(
        answer, {"a", "c"}, _Q4_OPTIONS,
        hint="For each, ask: did the test images influence any choice (a setting, an epoch, a recipe) before the "
             "number was reported? If they did, the number is optimistic. There may be more than one fair answer.",
        why="In (b), (d) and (e) the test split chose something, so its score is the luckiest of several. In (a) and "
            "(c) only training and validation data made the choices; retraining on more data with the chosen "
            "settings, as in (c), is common practice and keeps the test split unseen.")


__all__ = ["q1", "q2", "q3", "q4"]
