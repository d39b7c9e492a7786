"""Lesson 04's self-checks accept the right answers and reject wrong ones with a hint."""
import ftkit as ft

L = ft.check.lesson04


def test_q1_first_learning_rate_of_one_cycle():
    assert L.q1(1e-3 / 25) and L.q1(4e-5) and L.q1("4e-05")
    assert not L.q1(1e-3) and not L.q1(0) and not L.q1(1e-4) and "warms up" in L.q1(1e-3).message


def test_q2_and_q4_choices():
    assert L.q2("b") and not L.q2("a") and not L.q2("c") and "'a' / 'b'" in L.q2("z").message
    assert L.q4("adamw") and L.q4("AdamW") and not L.q4("adam") and not L.q4("sgd")
    assert "'sgd' / 'adam'" in L.q4("lion").message


def test_q3_optimizer_steps():
    assert L.q3(35) and L.q3("35") and not L.q3(30) and not L.q3(31) and not L.q3(500)
    assert "number" in L.q3("many").message
