"""Lesson 05's self-checks accept the right answers and reject wrong ones with a hint."""
import ftkit as ft

L = ft.check.lesson05


def test_q1_and_q4_are_multiple_choice():
    assert L.q1("b") and L.q1(" B ") and not L.q1("a") and not L.q1("c")
    assert "Overfitting" in L.q1("a").message
    assert L.q4("e") and not L.q4("c") and not L.q4("d")
    assert "'a' / 'b' / 'c' / 'd' / 'e'" in L.q4("f").message


def test_q2_counts_the_parameters_without_weight_decay():
    model = ft.load_model("glyph-resnet", num_classes=10)
    one_d = sum(p.numel() for p in model.parameters() if p.ndim == 1)  # biases, BatchNorm scales and shifts
    summary = ft.optimizer_summary(ft.make_optimizer(model, weight_decay=0.01))
    from_summary = sum(row["params"] for row in summary if row["kind"] == "1-D (no decay)")
    assert one_d == from_summary
    assert L.q2(one_d) and L.q2(str(one_d))
    total = sum(p.numel() for p in model.parameters())
    assert not L.q2(total) and not L.q2(total - one_d) and not L.q2(10)
    assert "ndim == 1" in L.q2(0).message


def test_q3_is_the_decoupled_decay_factor():
    assert L.q3((1 - 1e-3 * 0.1) ** 100) and L.q3(0.99005) and L.q3("0.99005")
    assert not L.q3(0.9) and not L.q3(1e-3 * 0.1 * 100) and not L.q3((1 - 0.1) ** 100) and not L.q3(1.0)
    assert "(1 - lr * weight_decay)" in L.q3(0.5).message
