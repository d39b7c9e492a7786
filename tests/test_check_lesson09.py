"""Lesson 09's self-checks accept the right answers and reject wrong ones with a hint.

None of them trains: Q1 and Q3 compute from fixed confusion matrices, Q2 simulates.
"""
import torch

import ftkit as ft

L = ft.check.lesson09


def test_per_class_scores_match_the_library_on_q1s_matrix():
    # The same matrix turned back into labels, scored by the library's own metrics.
    confusion = torch.tensor(L.CONFUSION)
    y = torch.cat([torch.full((int(n),), t) for t, row in enumerate(confusion) for p, n in enumerate(row)])
    p = torch.cat([torch.full((int(n),), p) for t, row in enumerate(confusion) for p, n in enumerate(row)])
    from ftkit.train.evaluate import metrics_from

    report = metrics_from("classification", {"loss": 0.0, "targets": y, "preds": p}, list(L.CLASSES), full=True)
    scores = L.per_class_scores(confusion)
    assert report["confusion"] == [list(r) for r in L.CONFUSION]
    for name in ("precision", "recall", "f1"):
        assert torch.allclose(scores[name], torch.tensor([r[name] for r in report["per_class"]], dtype=torch.float64))
    assert abs(float(scores["accuracy"]) - report["accuracy"]) < 1e-12


def test_q1_is_the_recall_read_along_the_row():
    assert L.q1(0.4) and L.q1("0.4") and L.q1(8 / 20)
    assert "precision" in L.q1(0.8).message  # the column: a specific hint
    assert "fraction" in L.q1(40).message
    assert not L.q1(0.5) and "row" in L.q1(0.5).message
    assert "Replace the" in L.q1(None).message


def test_q2_simulates_the_optimism_of_the_best_of_many():
    above = L.simulate_best_of()
    assert 0.01 < above < 0.04  # the expected maximum of 20 binomial scores: about 1.7 standard deviations
    assert L.simulate_best_of(recipes=1) < 0.002  # one recipe, nothing chosen: no optimism
    assert L.q2("b") and L.q2(" B ")
    assert not L.q2("a") and not L.q2("c") and "Simulated" in L.q2("a").message
    assert "'a' / 'b' / 'c'" in L.q2("d").message
    assert "Replace the" in L.q2(None).message


def test_q3_accuracy_hides_the_minority_class():
    assert L.q3((0.9, 0.5)) and L.q3([0.9, 0.5])
    assert not L.q3((0.9, 0.9)) and "accuracy is right" in L.q3((0.9, 0.9)).message
    assert not L.q3((0.5, 0.5))
    assert "two numbers" in L.q3(0.9).message
    assert "Replace the" in L.q3(None).message


def test_q4_fair_reports_are_those_the_test_split_did_not_steer():
    assert L.q4("a c") and L.q4(["c", "a"]) and L.q4("a, c")
    assert not L.q4("a") and not L.q4("a b c") and not L.q4("d")
    assert "influence" in L.q4("b").message
