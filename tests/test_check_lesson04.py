"""Lesson 04's self-checks accept the right answers and reject wrong ones with a hint."""
import math

import pytest

import ftkit as ft

L = ft.check.lesson04
pytestmark = pytest.mark.usefixtures("one_thread")


def test_q1_optimizer_steps_with_accumulation_match_what_fit_takes():
    assert L.q1(10) and L.q1("10") and not L.q1(35) and not L.q1(9) and not L.q1(8.75)
    assert "every 4" in L.q1(35).message and "number" in L.q1("many").message
    # The expected count is what fit really takes on the lesson's 100 images (batches of 16, 4 accumulated).
    from torch.utils.data import TensorDataset
    import torch

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(100, 4), torch.randint(0, 2, (100,)))
    history = ft.fit(torch.nn.Linear(4, 2), data, epochs=5, batch_size=16, accumulate=4, progress=False, live=False)
    assert L.q1(len(history.steps))


def _fake(monkeypatch, table):
    """Replace the measurement by fixed numbers, keyed by (learning rate text, epochs)."""
    measured = []

    def measure(strategy, source=False):
        measured.append(strategy)
        key = (strategy.describe()["lr"], strategy.epochs)
        val, test, kept, steps = table[key]
        out = {"val_accuracy": val, "accuracy": test, "steps": steps}
        if source:
            out["source_accuracy"] = kept
        return out

    monkeypatch.setattr(L, "_measure", measure)
    return measured


@pytest.mark.parametrize("fast, expected", [(0.95, "higher"), (0.82, "same"), (0.78, "same"), (0.70, "lower")])
def test_q2_predictions_are_judged_against_the_measurement(monkeypatch, fast, expected):
    _fake(monkeypatch, {("0.001", None): (0.80, 0.0, None, 5), ("0.003", None): (fast, 0.0, None, 5)})
    verdict = L.q2(expected)
    assert verdict and f"{fast:.1%}" in verdict.message
    for other in {"higher", "lower", "same"} - {expected}:
        verdict = L.q2(other)
        assert not verdict and "5 steps" in verdict.message and f"{fast:.1%}" not in verdict.message
    assert "'higher' / 'lower' / 'same'" in L.q2("much better").message


def test_q3_judges_a_recipe_on_validation_and_the_source_task_and_reports_test_once(monkeypatch):
    measured = _fake(monkeypatch, {("0.003", None): (0.967, 0.963, 0.78, 5), ("0.001", 20): (0.974, 0.971, 0.745, 20),
                                   ("0.001", None): (0.80, 0.80, 0.85, 5), ("0.003", 20): (0.97, 0.96, 0.28, 20),
                                   ("0.002", 10): (0.94, 0.99, 0.90, 10)})
    verdict = L.q3(ft.strategies.full(lr=3e-3))
    assert verdict and "96.7%" in verdict.message and "96.3%" in verdict.message
    assert L.q3(ft.strategies.full(lr=1e-3, epochs=20))
    verdict = L.q3(ft.strategies.full(lr=1e-3))  # section 6's run: too few steps
    assert not verdict and "more steps, or larger ones" in verdict.message
    verdict = L.q3(ft.strategies.full(lr=3e-3, epochs=20))  # the source task is lost
    assert not verdict and "trade one against the other" in verdict.message
    # Judged on validation, not test: a recipe with the best test score but 94% on validation fails.
    verdict = L.q3(ft.strategies.full(lr=2e-3, epochs=10))
    assert not verdict and "99.0%" not in verdict.message
    # Recipes outside the question's setting are refused before anything trains.
    measured.clear()
    for wrong in (ft.strategies.full(lr=1e-3, epochs=21), ft.strategies.linear_probe(lr=1e-2),
                  ft.strategies.partial(2, lr=1e-3), ft.strategies.two_phase(),
                  ft.Strategy("scratch", lr=1e-3, pretrained=False),
                  ft.Strategy("small batch", lr=1e-3, train={"batch_size": 16}),
                  ft.Strategy("accumulate", lr=1e-3, train={"accumulate": 2})):
        assert not L.q3(wrong), wrong
    assert measured == []
    assert not L.q3(3e-3) and "ft.Strategy" in L.q3(3e-3).message


def test_q4_a_schedule_function_for_lambdalr():
    def right(step):
        return (step + 1) / 11 if step < 10 else (100 - step) / 90

    assert L.q4(right) and L.q4(lambda s: min((s + 1) / 11, (100 - s) / 90))
    verdict = L.q4(lambda s: s / 10 if s < 10 else (100 - s) / 90)  # warmup starting at 0
    assert not verdict and "step 0 gives 1/11" in verdict.message
    verdict = L.q4(lambda s: (s + 1) / 11 if s < 10 else 0.5 * (1 + math.cos(math.pi * (s - 10) / 90)))  # cosine
    assert not verdict and "straight line" in verdict.message
    assert not L.q4(lambda s: 1 / (s - 50)) and "ZeroDivisionError" in L.q4(lambda s: 1 / (s - 50)).message
    assert not L.q4(0.5) and "function" in L.q4(0.5).message


def test_the_checks_measure_the_lessons_setting():
    """The real measurement (seeds 0-2, digits): Q2's direction, and a recipe that meets Q3's targets."""
    assert L.q2("higher") and not L.q2("same") and not L.q2("lower")
    assert L.q3(ft.strategies.full(lr=3e-3, name="mine"))
