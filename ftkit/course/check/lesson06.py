"""Self-checks for lesson 06 (forgetting and domain shift).

Q1 and Q2 ask for a prediction that the check then measures: Q1 trains plain fine-tuning at a
higher learning rate over the lesson's seeds and compares the source task it keeps with the rate
the lesson used (those runs come from the result cache when the lesson has run); Q2 re-estimates
the digit reader's BatchNorm statistics on unlabelled real digits (AdaBN) and scores it. Q3 asks
for a whole recipe, which the check trains over the lesson's seeds, judges on the validation
splits (new task and source task) and then scores on the test splits once. Q4 is about EWC's
strength.
"""
from __future__ import annotations

import statistics
from functools import lru_cache

import torch
from torch.utils.data import DataLoader

from ...core.errors import NonFiniteLossError
from ...data.catalogue import load_dataset
from ...experiments.analysis import ForgettingMeter
from ...experiments.compare import compare
from ...experiments.strategies import Phase, Strategy, set_trainable
from ...models.catalogue import load_model
from ...models.groups import head_name
from ...train.evaluate import evaluate
from ..lesson import by_device
from ._core import _MISSING_HINT, Verdict, check_choice, missing, not_a_recipe, right, wrong

# The lesson's setting (lessons/06_forgetting_and_domain_shift.ipynb, sections 1 and 5).
MODEL, DATASET = "glyph-resnet", "digits"
PER_CLASS, EPOCHS, BATCH, LR = 10, 5, 16, 1e-3
Q1_LR = 3e-3  # Q1: plain fine-tuning at this peak rate instead of LR
CLEAR = 0.05  # Q1: "clearly" more or less source accuracy kept: more than 5 points
ADABN_BAND = 0.05  # Q2: "within 5 points" of the zero-shot accuracy
KEEP_SOURCE, REACH_VAL = 0.95, 0.97  # Q3's targets on validation: source task kept, new task reached


def seeds() -> list[int]:
    """The lesson's seeds: 3 on a CPU, 5 on a GPU (``ft.by_device``)."""
    return list(range(by_device(cpu=3, gpu=5)))


@lru_cache(maxsize=1)
def _data():
    """(new task, source task): real digits (split 0) and the zoo model's source task, prepared for it."""
    return load_dataset(DATASET, MODEL, seed=0), load_dataset("zoo-source", MODEL)


def _settings() -> dict:
    data, source = _data()
    return {"model": MODEL, "data": data, "per_class": PER_CLASS, "seeds": seeds(), "epochs": EPOCHS,
            "batch_size": BATCH, "source": source.val, "eval_batch_size": 256, "val_every": EPOCHS, "progress": False}


def _fine_tune(lr: float) -> Strategy:
    return Strategy("fine-tune" if lr == LR else f"fine-tune at {lr:g}", lr=lr, train={"weight_decay": 0.0})


def _mean(runs: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in runs)


def q1_measured() -> dict[float, float]:
    """Mean source validation accuracy kept by plain fine-tuning at the lesson's rate and at Q1's."""
    # The lesson reads these runs from the cache with their source test score: record it here too.
    result = compare([_fine_tune(LR), _fine_tune(Q1_LR)], **_settings(), callbacks=[_SourceTest()])
    return {lr: _mean([r for r in result.runs if r["strategy"] == _fine_tune(lr).name], "source_accuracy")
            for lr in (LR, Q1_LR)}


def q1(answer) -> Verdict:
    """Predict, then run: plain fine-tuning at 3e-3 instead of 1e-3; how much of the source task is kept?"""
    if missing(answer):
        return wrong(_MISSING_HINT)
    kept = q1_measured()
    change = kept[Q1_LR] - kept[LR]
    expected = "a" if change > CLEAR else "c" if change < -CLEAR else "b"
    measured = (f"Measured (means over seeds {', '.join(map(str, seeds()))}, source validation images): "
                f"{kept[LR]:.1%} kept at {LR:g}, {kept[Q1_LR]:.1%} at {Q1_LR:g}.")
    return check_choice(
        answer, expected,
        {"a": "more than at 1e-3", "b": "about the same (within 5 points)", "c": "clearly less (more than 5 points)"},
        hint="With Adam-type optimizers, every weight moves by about the learning rate at each step, whatever the "
             "size of its gradient (lessons 03 and 05). Over the same 35 steps, how much further do the body's "
             "weights get from their pre-trained values at three times the rate? " + measured,
        why=measured + " The same steps at a higher rate carry every weight further from where pre-training left "
            "it, and nothing pulls it back: the rate is the first thing to lower when a model forgets.")


def q2_measured() -> dict[str, float]:
    """The digit reader on real test digits, as it is and after AdaBN on the unlabelled real training digits."""
    data, _ = _data()
    zero_shot = evaluate(_digit_reader(), data.test)["accuracy"]
    net = _digit_reader().train()  # train mode: BatchNorm updates its running statistics at every forward pass
    with torch.no_grad():  # no gradient, no labels: only the statistics change
        for x, _ in DataLoader(data.train, batch_size=64):
            net(x)
    return {"zero-shot": zero_shot, "adabn": evaluate(net, data.test)["accuracy"]}


def q2(answer) -> Verdict:
    """Predict, then run: BatchNorm statistics re-estimated on unlabelled real digits (AdaBN)."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    m = q2_measured()
    change = m["adabn"] - m["zero-shot"]
    expected = "a" if change >= ADABN_BAND else "c" if change <= -ADABN_BAND else "b"
    measured = (f"Measured on the real test digits: {m['zero-shot']:.1%} zero-shot, {m['adabn']:.1%} after AdaBN "
                f"({100 * change:+.1f} points).")
    return check_choice(
        answer, expected,
        {"a": "higher by at least 5 points", "b": "within 5 points", "c": "lower by at least 5 points"},
        hint="AdaBN changes only the BatchNorm layers' means and variances, not a single weight: it can only "
             "repair what a shift in those statistics broke. Is the difference between a rendered and a "
             "handwritten digit mostly a matter of brightness and contrast per channel, or of shapes? " + measured,
        why=measured + " Here the shift is in the shapes (strokes, styles), which the weights encode; and the "
            "rendered glyphs were already made to look like the real digits in grey levels and size. Re-estimating "
            "the statistics did not repair it: measure AdaBN before you rely on it.")


@lru_cache(maxsize=1)
def _reader_state() -> dict:
    net = load_model(MODEL)
    return {"weight": net.fc.weight[:10].detach().clone(), "bias": net.fc.bias[:10].detach().clone()}


def _digit_reader() -> torch.nn.Module:
    """The pre-trained network with the 10 digit rows of its head (the lesson's section 7)."""
    net = load_model(MODEL)
    head = torch.nn.Linear(net.fc.in_features, 10)
    with torch.no_grad():
        head.weight.copy_(_reader_state()["weight"])
        head.bias.copy_(_reader_state()["bias"])
    net.fc = head
    return net


def _peak_lr(strategy: Strategy) -> float:
    rates = [p.lr for p in strategy.phases] if strategy.phases else [strategy.lr]
    return max(r.stop if isinstance(r, slice) else r for r in rates)


def q3(answer) -> Verdict:
    """Design a recipe that keeps >= 95% of the source task and reaches >= 97% on the new task (validation)."""
    problem = not_a_recipe(answer, "ft.Strategy('mine', freeze=..., regularizers=(...,), lr=LR, train=NO_WD), "
                                   "as in section 5")
    if problem is not None:
        return problem
    if not answer.pretrained:
        return wrong("This recipe starts from random weights: it has no source task to keep. Start from the "
                     "pre-trained ones (pretrained=True, the default).")
    epochs = sum(answer.phase_epochs(EPOCHS))
    if epochs != EPOCHS:
        return wrong(f"Your recipe runs {epochs} epochs; keep to the lesson's {EPOCHS}, so that it is compared with "
                     "section 5's recipes at the same number of steps.")
    if _peak_lr(answer) > LR:
        return wrong(f"Your recipe's peak learning rate is {_peak_lr(answer):g}; keep it at most {LR:g}, as in "
                     "section 5 (a higher rate changes more than the mitigation).")
    if not _body_trains(answer):
        return wrong("Only the new head trains in this recipe, so the body cannot forget anything, and cannot "
                     "adapt either: let some of the body train (freeze fewer groups), and protect it otherwise.")
    test_meter = _SourceTest()
    try:
        result = compare([answer], **_settings(), callbacks=[test_meter])
    except NonFiniteLossError:
        return wrong("Your recipe's training loss stopped being a number; check its regularizers' strengths.")
    except (ValueError, TypeError) as err:  # a setting the recipe cannot use, or a factory without a stable name
        return wrong(f"The check could not train your recipe: {err}")
    runs = result.runs
    new, old = _mean(runs, "val_accuracy"), _mean(runs, "source_accuracy")
    numbers = (f"Validation, means over seeds {', '.join(map(str, seeds()))}: new task {new:.1%} (target "
               f"{REACH_VAL:.0%}), source task {old:.1%} (target {KEEP_SOURCE:.0%}). ")
    if new < REACH_VAL or old < KEEP_SOURCE:
        return wrong(numbers + "Read the trade-off plot of section 5: which mitigation kept the most of the source "
                     "task while losing nothing on the new one? Mitigations act in different ways (what may move, "
                     "a pull back, practice on old examples), so two of them can add up; and a strength is a choice "
                     "too, made on validation.")
    scores = [r["history"].info.get(_SourceTest.KEY) for r in runs]
    if any(s is None for s in scores):  # cached by a run that did not record it (a CompareBoard's): train again
        result = compare([answer], **{**_settings(), "cache": False}, callbacks=[test_meter])
        scores = [r["history"].info[_SourceTest.KEY] for r in result.runs]
    return right(numbers + f"Chosen on validation; its test scores, reported once: new task "
                 f"{_mean(runs, 'accuracy'):.1%}, source task {statistics.fmean(scores):.1%} (the pre-trained "
                 f"network: {test_meter.meter.before:.1%}).")


class _SourceTest:
    """A fit callback: the source task's test accuracy at the end of a run, in ``history.info`` (as the lesson's)."""

    KEY = "source_test_accuracy"

    def __init__(self):
        self.meter = ForgettingMeter(load_model(MODEL), _data()[1].test)

    def on_fit_end(self, history, model):
        history.info[self.KEY] = self.meter.measure(model)


def _body_trains(strategy: Strategy) -> bool:
    """Does any parameter outside the head train in some phase of the recipe (or an adapter)?"""
    if strategy.adapter is not None:
        return True
    model = load_model(MODEL, num_classes=10)
    head = head_name(model) + "."
    for phase in strategy.phases or (Phase(strategy.freeze, None, strategy.lr),):
        set_trainable(model, phase.freeze, strategy.bn)
        if any(p.requires_grad for n, p in model.named_parameters() if not n.startswith(head)):
            return True
    return False


def q4(answer) -> Verdict:
    """Why does EWC with lam = 1 do nothing on a confident classifier?"""
    return check_choice(
        answer, "b",
        {"a": "EWC only works with SGD",
         "b": "the Fisher information of a confident model is tiny, so lam * fisher is tiny: choose lam for the model",
         "c": "EWC needs the test split to estimate the Fisher information",
         "d": "EWC cannot be combined with a new head"},
        hint="EWC's pull on a weight is lam * fisher. Section 4 measured the Fisher information of this model: what "
             "is it made of, and what happens to it when p(label | image) is close to 1?",
        why="The Fisher information is the mean squared gradient of -log p(label | image); when the model is sure, "
            "that gradient is near 0. A strength that works for one model can do nothing for another: choose it on "
            "validation.")


__all__ = ["q1", "q2", "q3", "q4"]
