"""Lesson 00's self-checks accept the right answers and reject wrong ones with a hint."""
import ftkit as ft

L = ft.check.lesson00


def test_q1_parameter_count_is_computed_from_the_model():
    model = ft.load_model("minilm-l6", num_classes=5)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert L.q1(millions) and L.q1(round(millions, 1)) and L.q1(str(round(millions, 2)))
    assert not L.q1(millions * 2) and not L.q1(110) and "numel" in L.q1(1).message
    assert "number" in L.q1("lots").message


def test_q2_and_q3():
    assert L.q2(40) and L.q2(40.0) and not L.q2(8) and not L.q2(5)
    assert L.q3("b") and L.q3(" B ") and not L.q3("a") and not L.q3("d")
    assert "'a' / 'b'" in L.q3("e").message
