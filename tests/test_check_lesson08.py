"""Lesson 08's self-checks accept the right answers and reject wrong ones with a hint.

Q2 fine-tunes the tiny GPT with the lesson's recipe over its three seeds (some seconds per run);
Q3 samples from the pre-trained GPT; both are measured once and cached.
"""
import math

import ftkit as ft

L = ft.check.lesson08


def test_q1_is_the_exponential_of_the_mean_loss():
    assert L.q1(math.exp(3.9)) and L.q1(49.4) and L.q1("49.4")
    assert not L.q1(3.9) and "loss itself" in L.q1(3.9).message
    assert not L.q1(math.log(3.9)) and "exp(mean loss)" in L.q1(10).message
    assert "Replace the" in L.q1(None).message
    assert "Answer with a number" in L.q1("fifty").message


def test_q2_measures_entertainment_after_the_sport_fine_tune():
    assert "Replace the" in L.q2(None).message
    assert "'rise' or 'fall'" in L.q2("down").message
    m = L._q2_measured()
    assert len(m["after"]) == len(L.SEEDS)
    truth = "fall" if sum(a / m["before"] - 1 for a in m["after"]) < 0 else "rise"
    other = {"rise": "fall", "fall": "rise"}[truth]
    right, wrong = L.q2(truth.upper()), L.q2(other)
    assert right and "Measured on held-out entertainment" in right.message
    assert not wrong and "Measured on held-out entertainment" in wrong.message and "sum to one" in wrong.message


def test_q3_low_temperature_samples_are_less_varied():
    share = L._q3_measured()
    low, high = (share[t] for t in L.Q3_TEMPERATURES)
    assert low < high, share  # the lesson's greedy sample repeats itself; a low temperature comes close to it
    assert L.q3("less") and not L.q3("more")
    assert "Measured:" in L.q3("more").message and "greedy" in L.q3("more").message
    assert "'more' or 'less'" in L.q3("same").message


def test_q4_counts_lora_parameters_on_c_attn():
    expected = 4 * (4 * 128 + 384 * 4)
    assert L._q4_count() == expected  # A (r x 128) and B (384 x r) in each of 4 layers, nothing else trains
    assert L.q4(expected) and L.q4(str(expected))
    assert not L.q4(2 * expected) and "c_attn" in L.q4(2 * expected).message
    assert "Replace the" in L.q4(None).message
