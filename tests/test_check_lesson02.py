"""Lesson 02's self-checks accept the right answers and reject wrong ones with a hint."""
import ftkit as ft

L = ft.check.lesson02


def test_q1_partial_2_trainable_count_matches_what_the_strategy_trains():
    model = ft.load_model("glyph-resnet", num_classes=10)
    n = sum(p.numel() for name, p in model.named_parameters() if name.startswith(("block3.", "fc.")))
    assert L.q1(n) and L.q1(str(n))
    total = sum(p.numel() for p in model.parameters())
    head = model.fc.weight.numel() + model.fc.bias.numel()
    assert not L.q1(total) and not L.q1(head) and not L.q1(n - head) and "freeze_to" in L.q1(0).message


def test_q2_and_q3_choices():
    assert L.q2("b") and L.q2("B ") and not L.q2("a") and not L.q2("d")
    assert L.q3("c") and not L.q3("a") and not L.q3("b") and not L.q3("d") and "path" in L.q3("a").message
    assert "'a' / 'b'" in L.q2("linear").message
