"""Lesson 10's self-checks accept the right answers and reject wrong ones with a hint.

Q1 and Q2 rerun section 2's plain loop (a few seconds each); Q4 trains section 3's seed-0 model once.
"""
import ftkit as ft

L = ft.check.lesson10


def test_the_plain_loop_resumes_exactly_only_with_everything_restored():
    assert L.plain_resume(0)  # weights, optimizer, schedule and random state: bit-identical
    assert not L.plain_resume(0, restore_optimizer=False)  # a fresh AdamW: different
    assert not L.plain_resume(0, random_state="reseed")  # Q1: re-seeding is not restoring
    assert L.plain_resume(0, sgd=True, restore_optimizer=False)  # Q2: plain SGD has no state to lose


def test_q1_reseeding_is_not_restoring():
    assert "Replace the" in L.q1(None).message
    assert "'yes' or 'no'" in L.q1("maybe").message
    verdict = L.q1(" No ")
    assert verdict and "Measured (seed 0)" in verdict.message and "not bit-identical" in verdict.message
    wrong = L.q1("yes")
    assert not wrong and "freshly seeded" in wrong.message


def test_q2_plain_sgd_has_no_state_to_lose():
    verdict = L.q2("yes")
    assert verdict and "were bit-identical" in verdict.message
    wrong = L.q2("no")
    assert not wrong and "state_dict()" in wrong.message


def test_q3_only_the_pickle_runs_code():
    assert L.q3("b") and L.q3(" B ")
    assert not L.q3("a") and not L.q3("c") and not L.q3("a b")
    assert "pickle" not in L.q3("a").message.lower()  # the hint points the way without naming the answer
    assert "'a' / 'b' / 'c'" in L.q3("d").message


def test_q4_forgetting_the_normalisation_costs_a_lot():
    with_norm, without = L._q4_measured()
    assert with_norm > 0.9 and with_norm - without > 0.20  # the measurement the right answer rests on
    verdict = L.q4("c")
    assert verdict and "Measured: test accuracy" in verdict.message
    assert not L.q4("a") and not L.q4("b")
    assert "BatchNorm" in L.q4("a").message
    assert "'a' / 'b' / 'c'" in L.q4("z").message
