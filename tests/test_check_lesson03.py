"""Lesson 03's self-checks accept the right answers and reject wrong ones with a hint."""
import ftkit as ft

L = ft.check.lesson03


def _model():
    return ft.load_model("glyph-resnet", num_classes=10)


def test_q1_counts_what_freeze_to_leaves_trainable():
    model = ft.freeze_to(_model(), 3)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert L.q1(count) and L.q1(str(count)) and L.q1(float(count))
    total = sum(p.numel() for p in model.parameters())
    assert not L.q1(total) and not L.q1(count - 1930) and "requires_grad" in L.q1(0).message
    assert "number" in L.q1("most").message


def test_q2_batchnorm_statistics():
    assert L.q2("b") and L.q2(" B") and not L.q2("a") and not L.q2("c") and not L.q2("d")
    assert "'a' / 'b'" in L.q2("e").message


def test_q3_gradual_unfreezing_epoch_follows_fit():
    model = _model()
    n = len(ft.layer_groups(model))
    assert L.q3((n - 1) * 2 + 1) and L.q3(9) and not L.q3(5) and not L.q3(8) and not L.q3(10)


def test_q4_discriminative_learning_rate_of_block2():
    names = [g.name for g in ft.layer_groups(_model())]
    lr = ft.group_lrs(slice(1e-5, 1e-3), len(names))[names.index("block2")]
    assert L.q4(lr) and L.q4(1e-4) and L.q4("1e-4") and not L.q4(1e-3) and not L.q4(1e-5) and not L.q4(5e-4)
    assert "geometric" in L.q4(1).message
