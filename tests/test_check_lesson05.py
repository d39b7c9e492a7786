"""Lesson 05's self-checks accept the right answers and reject wrong ones with a hint.

Q2 and Q3 train on the lesson's task over its seeds (a few seconds per run); Q3's wrong recipe is
Q2's, renamed, so it comes from the result cache.
"""
import dataclasses

import ftkit as ft
from ftkit.experiments.strategies import L2SPFactory

L = ft.check.lesson05
RECIPE = dict(lr=3e-3, epochs=15, schedule="constant")


def test_the_toy_measures_what_section_3_says():
    m = L._q1_measured()
    assert m["large"] > 0.999 and m["small"] < 0.8  # L2 under Adam: by gradient size
    assert abs(m["decoupled"] - (1 - 3e-3 * 0.1) ** 100) < 1e-3  # AdamW: (1 - lr * wd) ** steps
    assert abs(m["size 1"] - m["decoupled"]) < 0.005  # Q1's weight: like decoupled decay


def test_q1_is_the_weight_whose_gradients_match_the_penalty():
    assert L.q1("c") and L.q1(" C ")
    assert not L.q1("a") and not L.q1("b")
    assert "divides each step by the size of the whole gradient" in L.q1("a").message
    assert "Replace the" in L.q1(None).message
    assert "'a' / 'b' / 'c'" in L.q1("d").message


def test_q2_measures_li_et_al_s_alpha_and_says_no():
    assert "Replace the" in L.q2(None).message
    assert "'yes' or 'no'" in L.q2("maybe").message
    verdict = L.q2("no")
    assert verdict and "Measured:" in verdict.message
    wrong = L.q2("Yes")
    assert not wrong and "Measured:" in wrong.message and "toy" in wrong.message


def test_q3_refuses_what_it_cannot_judge_before_training():
    assert "Replace the" in L.q3(None).message
    assert "ft.Strategy" in L.q3("augmentation").message
    assert "random weights" in L.q3(ft.Strategy("scratch", pretrained=False, **RECIPE)).message
    assert "15" in L.q3(dataclasses.replace(ft.Strategy("long", **RECIPE), epochs=40)).message
    assert "its own name" in L.q3(ft.Strategy("baseline", augment="light", **RECIPE)).message


def test_q3_judges_a_recipe_on_validation_and_reports_test_once():
    good = ft.Strategy("augmentation + L2-SP 1", augment="light", regularizers=(L2SPFactory(alpha=1.0),),
                       train={"weight_decay": 0.0}, **RECIPE)
    verdict = L.q3(good)
    assert verdict and "Chosen on validation" in verdict.message and "test accuracy" in verdict.message
    weak = ft.Strategy("mine", regularizers=(L2SPFactory(alpha=0.1),), train={"weight_decay": 0.0}, **RECIPE)
    verdict = L.q3(weak)  # Q2's recipe under another name: cached
    assert not verdict and "Validation accuracy" in verdict.message and "test" not in verdict.message


def test_q4_is_the_optimism_of_choosing_on_test():
    assert L.q4("b") and not L.q4("a") and not L.q4("c") and not L.q4("d")
    assert "Choosing is also a kind of fitting" in L.q4("a").message
