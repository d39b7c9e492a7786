"""Self-checks for lesson 11 (your own data).

Q1 asks how many images a split leaves for training; the check builds such a folder and asks
``from_folder``. Q2 asks for a recipe for a described dataset (3 images per class, on a CPU),
which the check trains over the lesson's seeds on the shipped image folder, judges on the
validation split and then scores on the test split once. Q3 and Q4 are about the licence of data
and about personal data.
"""
from __future__ import annotations

import statistics
import tempfile
from functools import lru_cache
from pathlib import Path

from ...core.errors import NonFiniteLossError
from ...data.examples import example_data
from ...data.files import from_folder
from ...experiments import strategies as s
from ...experiments.compare import compare
from ._core import Verdict, check_choice, check_number, not_a_recipe, right, wrong

# The lesson's offline setting (lessons/11_your_own_data.ipynb, sections 1 and 4).
MODEL = "glyph-resnet"
SPLIT = dict(val_size=0.2, test_size=0.2, seed=0)
EPOCHS, SEEDS, BATCH_SIZE = 10, (0, 1, 2), 16
Q1_FOLDER = {"cats": 70, "dogs": 50, "rabbits": 30}  # images per class folder in Q1's description
Q2_PER_CLASS, Q2_TARGET = 3, 0.70  # Q2: 3 images per class; mean validation accuracy to reach


@lru_cache(maxsize=1)
def _q1_expected() -> int:
    """Q1's folder, built for real (tiny PNGs) and split as the question says: its training images."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pets"
        for name, n in Q1_FOLDER.items():
            (root / name).mkdir(parents=True)
            for i in range(n):
                Image.new("L", (2, 2)).save(root / name / f"{i}.png")
        return len(from_folder(root, val_size=0.2, test_size=0.2).train)


def q1(answer) -> Verdict:
    """Predict: how many training images does ``from_folder(path, val_size=0.2, test_size=0.2)`` leave?"""
    expected = _q1_expected()
    return check_number(
        answer, expected,
        hint="Both fractions are of all the images in the folder, not of what is left after the other split; "
             "and each class gives its share. Add the three folders up first.",
        why=f"{sum(Q1_FOLDER.values())} images: {expected} for training and the rest for validation and test, "
            "each class in proportion (the smallest class, rabbits, has only 6 test images: a per-class "
            "accuracy on so few moves by 17 points per image).")


@lru_cache(maxsize=1)
def _data():
    """The lesson's split of the shipped image folder, prepared for the lesson's model."""
    return from_folder(example_data("handwritten"), MODEL, **SPLIT)


def _per_epoch(runs: list[dict]) -> float:
    return statistics.fmean(e["time_s"] for r in runs for e in r["history"].epochs)


def q2(answer) -> Verdict:
    """Design: a recipe for 3 images per class on a CPU, with a mean validation accuracy of at least 70%."""
    problem = not_a_recipe(answer, "ft.strategies.full(lr=...) or ft.strategies.linear_probe(), as in section 4")
    if problem is not None:
        return problem
    epochs = sum(answer.phase_epochs(EPOCHS))
    if epochs > EPOCHS:
        return wrong(f"Your recipe runs {epochs} epochs; keep to the lesson's {EPOCHS}.")
    settings = dict(model=MODEL, data=_data(), seeds=list(SEEDS), per_class=Q2_PER_CLASS, epochs=EPOCHS,
                    batch_size=BATCH_SIZE, progress=False)
    try:
        result = compare([answer], **settings)
    except NonFiniteLossError:
        return wrong("Your recipe's training loss stopped being a number: a learning rate far too high.")
    except (ValueError, TypeError) as err:  # a setting the recipe cannot use
        return wrong(f"The check could not train your recipe: {err}")
    runs = result.runs
    val = statistics.fmean(r["val_accuracy"] for r in runs)
    per_seed = ", ".join(format(r["val_accuracy"], ".0%") for r in runs)
    numbers = (f"Mean validation accuracy {val:.1%} over seeds {', '.join(map(str, SEEDS))} "
               f"({per_seed}), {Q2_PER_CLASS} images per class. ")
    if val < Q2_TARGET:
        if not answer.pretrained:
            return wrong(numbers + "With 12 images, random weights have almost nothing to learn from: start "
                         "from the pre-trained ones.")
        return wrong(numbers + f"The target is {Q2_TARGET:.0%}. With 12 training images and batches of "
                     f"{BATCH_SIZE}, each epoch is a single step: {EPOCHS} steps in all. What trains, and how fast, "
                     "has to suit so few steps and so few images. The recommendation rule (section 4, step 2) says "
                     "where to start.")
    cost = ""
    if answer.pretrained and answer.freeze not in (-1,):
        probe = compare([s.linear_probe()], **settings).runs
        cost = (f" Its epochs took {_per_epoch(runs) / _per_epoch(probe):.1f} times as long as the linear "
                "probe's here: worth it only if validation says so.")
    test = statistics.fmean(r["accuracy"] for r in runs)
    return right(numbers + f"Chosen on validation; its test accuracy, reported once: {test:.1%}." + cost)


def q3(answer) -> Verdict:
    """A data set licensed CC BY-NC 4.0, used to fine-tune a model for a company's product: what then?"""
    return check_choice(
        answer, "b",
        {"a": "it is allowed: the data set is public on the web",
         "b": "NC means non-commercial: this use needs the rights holder's permission (another licence), or other data",
         "c": "it is allowed as long as the authors are credited",
         "d": "it is allowed because the model's weights are not a copy of the data"},
        hint="Read the licence's name letter by letter: BY, NC. What does each one ask of you, and which "
             "of them does a company product run into?",
        why="Public is not the same as free to use: the licence sets the terms. BY asks for credit; NC forbids "
            "commercial use. Whether weights trained on data are bound by its licence is not settled in law, "
            "so do not build a product on that bet: ask for permission, or use other data.")


def q4(answer) -> Verdict:
    """A CSV of customer messages with names and e-mail addresses: what to do before fine-tuning on it?"""
    return check_choice(
        answer, "b",
        {"a": "nothing: the classifier only outputs a team name, so no personal data can come out of it",
         "b": "check that you may use the messages for this purpose, and remove or mask the personal data "
              "the task does not need, before training",
         "c": "nothing, as long as training runs on your own computer",
         "d": "remove the personal data from the test split only, since that is the split you report"},
        hint="Data-protection law (the GDPR in the EU, for example) is about processing personal data, and "
             "copying, storing and training on it are processing, wherever it happens and whatever the model "
             "outputs afterwards.",
        why="A name or an address does not help route a message to a team, so masking it costs nothing and "
            "removes the risk: the data set, its copies and the model itself (models can memorise rare strings "
            "of their training data) no longer hold it. Using data collected for one purpose for another "
            "needs a legal basis, so check that first.")


__all__ = ["q1", "q2", "q3", "q4"]
