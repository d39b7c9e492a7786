"""What lesson 05 relies on from the library: which of glyph-resnet's parameters get weight decay.

The lesson shows the idiom in plain PyTorch (decay for weight matrices and convolution kernels,
none for biases and normalisation parameters) and says ``ft.make_optimizer`` and ``ft.fit`` build
the same split. These tests check that on the lesson's own model, by behaviour as well as by the
groups' settings, so that they fail if a 1-D parameter were ever decayed or a matrix were not.
"""
import torch
from torch.utils.data import TensorDataset

import ftkit as ft


def lesson_model():
    """glyph-resnet with a 10-class head and the lesson's rate-0 dropout in front of it."""
    torch.manual_seed(0)
    return ft.add_dropout_before_head(ft.load_model("glyph-resnet", num_classes=10), 0.0)


def test_no_decay_groups_hold_exactly_the_one_dimensional_parameters():
    model = lesson_model()
    optimizer = ft.make_optimizer(model, "adamw", lr=3e-3, weight_decay=0.1)
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    ids = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}  # each exactly once
    for name, p in model.named_parameters():
        assert decay_of[id(p)] == (0.0 if p.ndim == 1 else 0.1), name
    one_d = sum(p.numel() for p in model.parameters() if p.ndim == 1)
    assert 0 < one_d < 0.01 * sum(p.numel() for p in model.parameters())  # the lesson: under 1% of the network
    summary = ft.optimizer_summary(optimizer)
    assert sum(r["params"] for r in summary.rows if r["weight_decay"] == 0) == one_d


def test_the_lessons_plain_pytorch_split_is_the_one_make_optimizer_builds():
    model = lesson_model()
    decay = {id(p) for p in model.parameters() if p.ndim > 1}  # the lesson's plain-PyTorch groups
    no_decay = {id(p) for p in model.parameters() if p.ndim == 1}
    optimizer = ft.make_optimizer(model, "adamw", lr=3e-3, weight_decay=0.1)
    assert {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]} == decay
    assert {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]} == no_decay


def test_a_step_with_zero_gradients_shrinks_matrices_and_leaves_biases_and_norms():
    model = lesson_model()
    lr, wd = 3e-3, 1.0
    optimizer = ft.make_optimizer(model, "adamw", lr=lr, weight_decay=wd)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only decoupled weight decay can move a parameter
    optimizer.step()
    for n, p in model.named_parameters():
        if p.ndim == 1:
            assert torch.equal(p, before[n]), n
        else:
            torch.testing.assert_close(p.detach(), before[n] * (1 - lr * wd), rtol=1e-6, atol=0), n


def test_fit_decays_matrices_and_never_the_one_dimensional_parameters():
    # One optimizer step of fit, with and without weight decay, from the same start on the same batch:
    # the gradients are the same, so only decay can tell the two apart.
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(10, 1, 32, 32, generator=g), torch.arange(10))
    after = {}
    for wd in (0.0, 1.0):
        model = lesson_model()
        ft.fit(model, data, epochs=1, batch_size=10, lr=3e-3, weight_decay=wd, schedule="constant", progress=False,
               live=False)
        after[wd] = dict(model.named_parameters())
    for name, p in after[0.0].items():
        q = after[1.0][name]
        assert torch.equal(p, q) == (p.ndim == 1), name
