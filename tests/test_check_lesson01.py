"""Lesson 01's self-checks accept the right answers and reject wrong ones with a hint."""
import torch

import ftkit as ft

L = ft.check.lesson01


def test_q1_new_head_parameters_are_computed_from_the_model():
    fc = ft.load_model("glyph-resnet", num_classes=10).fc
    n = fc.weight.numel() + fc.bias.numel()
    assert L.q1(n) and L.q1(str(n)) and L.q1(float(n))
    assert not L.q1(fc.weight.numel()) and not L.q1(192 * 82 + 82) and "bias" in L.q1(1).message
    assert "number" in L.q1("many").message


def test_q2_zero_shot_over_all_outputs_as_a_fraction_or_a_percentage():
    model = ft.load_model("glyph-resnet")
    test = ft.load_dataset("digits", model, seed=0).test
    outputs = ft.predict(model, test).outputs
    y = torch.tensor(test.targets)
    every = (outputs.argmax(1) == y).float().mean().item()
    digits_only = (outputs[:, :10].argmax(1) == y).float().mean().item()
    assert L.q2(every) and L.q2(round(every, 2)) and L.q2(100 * every) and L.q2(torch.tensor(every))
    assert not L.q2(digits_only) and not L.q2(100 * digits_only) and not L.q2(0.1)
    assert "82" in L.q2(0.9).message and "number" in L.q2("half").message


def test_q3_predict_then_run_is_checked_against_a_measurement():
    def zero_shot(size):
        model = ft.load_model("glyph-resnet", image_size=size)
        test = ft.load_dataset("digits", model, seed=0).test
        return (ft.predict(model, test).outputs[:, :10].argmax(1) == torch.tensor(test.targets)).float().mean().item()

    at24, at32 = zero_shot(24), zero_shot(32)
    right, wrong = ("higher", "lower") if at24 > at32 else ("lower", "higher")
    assert L.q3(right) and L.q3(right.upper()) and not L.q3(wrong)
    assert f"{at24:.1%}" in L.q3(right).message and "pre-training" in L.q3(wrong).message
    assert "'higher' / 'lower'" in L.q3("b").message


def test_q4_design_choice():
    assert L.q4("b") and not L.q4("a") and not L.q4("c") and not L.q4("d")
    assert "three questions" in L.q4("a").message and "'a' / 'b'" in L.q4("e").message
