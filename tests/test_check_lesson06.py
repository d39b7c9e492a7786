"""Lesson 06's self-checks accept the right answers and reject wrong ones with a hint.

Q1 and Q3 train glyph-resnet on the lesson's task over its seeds (about a second per run); Q3's
weak recipe is Q1's plain fine-tuning under another name, so it comes from the result cache.
"""
import dataclasses

import pytest
import torch

import ftkit as ft

L = ft.check.lesson06
LR = 1e-3
NO_WD = {"weight_decay": 0.0}
pytestmark = pytest.mark.usefixtures("one_thread")


@dataclasses.dataclass(frozen=True)
class ReplayFactory:
    """Rehearsal with 5 source images per class, through the pre-trained head (the lesson's RehearsalFactory)."""

    weight: float

    def __call__(self, model):
        pre = ft.load_model("glyph-resnet")
        source = ft.load_dataset("zoo-source", pre)
        return ft.Rehearsal(ft.few_shot(source.train, per_class=5, seed=0), pre.fc, weight=self.weight,
                            batch_size=16, seed=0)


def test_q1_a_higher_rate_keeps_less_of_the_source_task():
    kept = L.q1_measured()
    assert kept[3e-3] < kept[1e-3] - 0.05, kept  # the lesson's claim for option (c)
    assert L.q1("c") and "Measured" in L.q1("c").message
    wrong = L.q1("a")
    assert not wrong and "about the learning rate" in wrong.message and "Measured" in wrong.message
    assert not L.q1("b")
    assert "Replace the" in L.q1(None).message


def test_q2_adabn_measures_within_five_points_here():
    m = L.q2_measured()
    assert abs(m["adabn"] - m["zero-shot"]) < 0.05, m
    assert L.q2("b") and not L.q2("a") and not L.q2("c")
    assert "BatchNorm layers' means and variances" in L.q2("a").message
    assert "Replace the" in L.q2(None).message


def test_q2_reader_is_the_digit_rows_of_the_pretrained_head():
    pre, reader = ft.load_model("glyph-resnet"), L._digit_reader()
    assert reader.fc.out_features == 10
    assert (reader.fc.weight == pre.fc.weight[:10]).all() and (reader.fc.bias == pre.fc.bias[:10]).all()
    test = ft.load_dataset("digits", pre).test
    x = torch.stack([test[i][0] for i in range(8)])
    with torch.no_grad():  # the reader's logits are the pre-trained network's first 10
        assert torch.allclose(reader.eval()(x), pre.eval()(x)[:, :10], atol=1e-5)


def test_q3_refuses_what_it_cannot_judge_before_training():
    assert "Replace the" in L.q3(None).message
    assert "ft.Strategy" in L.q3("rehearsal").message
    assert "random weights" in L.q3(ft.Strategy("scratch", pretrained=False, lr=LR)).message
    assert "the lesson's 5" in L.q3(ft.Strategy("long", lr=LR, epochs=10)).message
    assert "at most 0.001" in L.q3(ft.Strategy("fast", lr=3e-3)).message
    assert "Only the new head trains" in L.q3(ft.Strategy("probe", freeze=-1, lr=LR)).message
    assert "Only the new head trains" in L.q3(ft.Strategy("probe 4", freeze=4, lr=LR)).message


def test_q3_judges_a_recipe_on_validation_and_reports_test_once():
    weak = ft.Strategy("mine", lr=LR, train=NO_WD)  # plain fine-tuning: forgets
    verdict = L.q3(weak)
    assert not verdict and "source task" in verdict.message and "test" not in verdict.message
    good = ft.Strategy("rehearsal 1 + freeze 3", freeze=3, regularizers=(ReplayFactory(1.0),), lr=LR, train=NO_WD)
    verdict = L.q3(good)
    assert verdict and "Chosen on validation" in verdict.message and "test scores" in verdict.message


def test_q4_is_the_size_of_the_fisher_information():
    assert L.q4("b") and L.q4(" B ")
    assert not L.q4("a") and not L.q4("c") and not L.q4("d")
    assert "lam * fisher" in L.q4("a").message
    assert "Replace the" in L.q4(None).message
