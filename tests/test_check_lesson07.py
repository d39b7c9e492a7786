"""Lesson 07's self-checks accept the right answers and reject wrong ones with a hint.

Each check measures what it asks about on ftkit's own modules; these tests compare those
measurements with the numbers worked out by hand.
"""
import ftkit as ft

L = ft.check.lesson07


def test_q1_counts_lora_on_one_feed_forward_layer():
    assert L._q1_measured() == 4 * (384 + 1536)
    assert L.q1(7680) and L.q1("7680") and L.q1(7680.0)
    assert not L.q1(4 * 384 * 1536) and not L.q1(4 * 384)
    assert "A is r x in" in L.q1(1).message
    assert "Replace the" in L.q1(None).message
    assert "Answer with a number" in L.q1("many").message


def test_q2_counts_lora_on_query_and_value_with_the_head():
    trainable, lora = L._q2_measured()
    assert lora == 6 * 2 * 16 * (384 + 384)
    assert trainable == lora + 384 * 5 + 5
    assert L.q2(trainable)
    wrong = L.q2(lora)  # the head forgotten
    assert not wrong and "head" in wrong.message
    assert "Replace the" in L.q2(None).message


def test_q3_only_b_moves_at_the_first_step():
    g = L._q3_measured()
    assert g["A"] == 0 and g["B"] > 0
    assert L.q3("B") and L.q3(" b ")
    for answer in ("A", "both", "neither"):
        verdict = L.q3(answer)
        assert not verdict and "B (A x)" in verdict.message
    assert "'A' / 'B' / 'both' / 'neither'" in L.q3("C").message


def test_q4_the_prompt_lengthens_every_sequence():
    assert L._q4_measured() == 20 + 16
    assert L.q4(36) and not L.q4(16) and not L.q4(20)
    assert "in front" in L.q4(16).message
