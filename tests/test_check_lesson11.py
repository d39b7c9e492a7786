"""Lesson 11's self-checks accept the right answers and reject wrong ones with a hint.

Q2 trains on 3 images per class of the lesson's split over its seeds (about a second per run); its
right answer is the lesson's rule, the linear probe, and full fine-tuning at its ready-made rate is
measured to fall short.
"""
import dataclasses

import pytest

import ftkit as ft

L = ft.check.lesson11
pytestmark = pytest.mark.usefixtures("one_thread")


def test_q1_is_what_from_folder_leaves_for_training():
    assert L._q1_expected() == 90  # 150 images: 30 for test, 30 for validation (both fractions of all)
    assert L.q1(90) and L.q1("90") and L.q1(90.0)
    assert not L.q1(96) and not L.q1(60)
    assert "fractions are of all the images" in L.q1(96).message
    assert "Replace the" in L.q1(None).message
    assert "number" in L.q1("ninety").message


def test_q2_refuses_what_it_cannot_judge_before_training():
    assert "Replace the" in L.q2(None).message
    assert "ft.Strategy" in L.q2("linear probe").message
    too_long = dataclasses.replace(ft.strategies.linear_probe(), epochs=30)
    assert "10" in L.q2(too_long).message


def test_q2_accepts_the_linear_probe_and_reports_test_once():
    verdict = L.q2(ft.strategies.linear_probe())
    assert verdict, verdict.message
    assert "Chosen on validation" in verdict.message and "test accuracy" in verdict.message


def test_q2_rejects_full_fine_tuning_at_its_ready_made_rate_and_scratch():
    verdict = L.q2(ft.strategies.full())
    assert not verdict and "Mean validation accuracy" in verdict.message and "test" not in verdict.message
    assert "single step" in verdict.message
    scratch = L.q2(ft.strategies.scratch())
    assert not scratch and "pre-trained" in scratch.message


def test_q3_is_the_non_commercial_clause():
    assert L.q3("b") and L.q3(" B ")
    assert not L.q3("a") and not L.q3("c") and not L.q3("d")
    assert "letter by letter" in L.q3("c").message


def test_q4_is_purpose_and_minimisation_before_training():
    assert L.q4("b")
    assert not L.q4("a") and not L.q4("c") and not L.q4("d")
    assert "processing" in L.q4("a").message
