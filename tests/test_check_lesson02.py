"""Lesson 02's self-checks accept the right answers and reject wrong ones with a hint."""
import pytest

import ftkit as ft

L = ft.check.lesson02
pytestmark = pytest.mark.usefixtures("one_thread")


def test_q1_partial_2_trainable_count_matches_what_the_strategy_trains():
    model = ft.load_model("glyph-resnet", num_classes=10)
    n = sum(p.numel() for name, p in model.named_parameters() if name.startswith(("block3.", "fc.")))
    assert L.q1(n) and L.q1(str(n))
    total = sum(p.numel() for p in model.parameters())
    head = model.fc.weight.numel() + model.fc.bias.numel()
    assert not L.q1(total) and not L.q1(head) and not L.q1(n - head) and "freeze_to" in L.q1(0).message


def _fake(monkeypatch, accuracies):
    """Replace the measurement by fixed mean accuracies, keyed by the strategy's learning rate text."""
    measured = []

    def measure(strategy):
        measured.append(strategy)
        key = (strategy.freeze, strategy.describe()["lr"])
        return {"accuracy": accuracies[key][0], "val_accuracy": accuracies[key][1]}

    monkeypatch.setattr(L, "_measure", measure)
    return measured


@pytest.mark.parametrize("probe, expected", [(0.15, "lower"), (0.62, "same"), (0.58, "same"), (0.70, "higher")])
def test_q2_predictions_are_judged_against_the_measurement(monkeypatch, probe, expected):
    _fake(monkeypatch, {(-1, "0.001"): (probe, 0.0), (None, "0.001"): (0.6, 0.0)})
    assert L.q2(expected)
    for other in {"higher", "lower", "same"} - {expected}:
        verdict = L.q2(other)
        assert not verdict and "steps" in verdict.message and f"{probe:.1%}" not in verdict.message
    assert "'higher' / 'lower' / 'same'" in L.q2("about the same").message


@pytest.mark.parametrize("everything, expected", [(0.39, "lower"), (0.70, "same"), (0.80, "higher")])
def test_q3_predictions_are_judged_against_the_measurement(monkeypatch, everything, expected):
    _fake(monkeypatch, {(None, "0.01"): (everything, 0.0), (None, "0.01/10..0.01"): (0.69, 0.0)})
    assert L.q3(expected) and f"{everything:.1%}" in L.q3(expected).message
    assert not any(L.q3(other) for other in {"higher", "lower", "same"} - {expected})


def test_q4_judges_a_recipe_on_validation_and_reports_its_test_accuracy_once(monkeypatch):
    measured = _fake(monkeypatch, {(-2, "0.001"): (0.61, 0.61), (-2, "0.01/10..0.01"): (0.69, 0.743),
                                   (-2, "0.0012"): (0.70, 0.62)})
    verdict = L.q4(ft.strategies.partial(2, lr=slice(1e-2)))
    assert verdict and "74.3%" in verdict.message and "69.0%" in verdict.message
    # Judged on validation, not test: a recipe with the better test score but +1 point on validation fails.
    verdict = L.q4(ft.strategies.partial(2, lr=1.2e-3))
    assert not verdict and "+1.0 points" in verdict.message and "70.0%" not in verdict.message
    # Recipes that change what trains, or for how long, are refused before anything trains.
    measured.clear()
    for wrong in (ft.strategies.full(lr=slice(1e-2)), ft.strategies.partial(3, lr=slice(1e-2)),
                  ft.strategies.linear_probe(lr=1e-2), ft.strategies.partial(2, lr=1e-2, epochs=20),
                  ft.strategies.two_phase(), ft.Strategy("scratch-2", freeze=-2, lr=1e-2, pretrained=False)):
        verdict = L.q4(wrong)
        assert not verdict and "freeze=-2" in verdict.message, wrong
    assert not L.q4("slice(1e-2)") and "strategy" in L.q4(0.01).message
    assert measured == []


def test_the_checks_measure_the_lessons_setting():
    """The real measurement: the directions the lesson's exercises find (means over seeds 0-2, digits)."""
    assert L.q2("lower") and not L.q2("same") and not L.q2("higher")
    assert L.q4(ft.strategies.partial(2, lr=slice(1e-2), name="mine"))
    assert not L.q4(ft.strategies.partial(2, lr=1e-3))
