"""Lesson 03's self-checks accept the right answers and reject wrong ones with a hint."""
import copy

import pytest
import torch
from torch.utils.data import TensorDataset

import ftkit as ft

L = ft.check.lesson03


def _model():
    return ft.load_model("glyph-resnet", num_classes=10)


def test_q1_batchnorm_statistics_move_with_bn_train():
    assert L.q1("b") and L.q1(" B") and not L.q1("a") and not L.q1("c") and not L.q1("d")
    assert "'a' / 'b'" in L.q1("e").message and "requires_grad" in L.q1("a").message
    # what the lesson's cell measures: statistics move, weights do not
    model = _model()
    net = ft.freeze(copy.deepcopy(model), bn="train")
    g = torch.Generator().manual_seed(0)
    ft.fit(net, TensorDataset(torch.randn(16, 1, 32, 32, generator=g), torch.arange(16) % 10), epochs=1,
           lr=1e-2, batch_size=8, progress=False, device="cpu")
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, net.get_submodule(n).weight) for n, m in norms)
    assert any(not torch.equal(m.running_mean, net.get_submodule(n).running_mean) for n, m in norms)


def test_q2_counts_the_epochs_block2_trains_as_fit_does():
    model = _model()
    sizes = [g.numel for g in ft.layer_groups(model)]
    g = torch.Generator().manual_seed(0)
    history = ft.fit(model, TensorDataset(torch.randn(8, 1, 32, 32, generator=g), torch.arange(8) % 10), epochs=6,
                     lr=1e-4, unfreeze_every=2, batch_size=8, progress=False, device="cpu")
    names = [g.name for g in ft.layer_groups(model)]
    block2 = names.index("block2")
    # block2 trains in an epoch when the trainable count includes every group from block2 to the head
    measured = sum(count >= sum(sizes[block2:]) for count in history.metric("trainable"))
    assert L.q2(measured) and L.q2(2) and L.q2("2") and L.q2(2.0)
    assert not L.q2(1) and not L.q2(3) and not L.q2(6) and "top down" in L.q2(4).message


def test_q3_slice_spreads_over_frozen_groups_too():
    assert L.q3(slice(1e-6, 1e-2)) and L.q3(slice(1.0e-6, 0.01))
    assert ft.group_lrs(slice(1e-6, 1e-2), 5)[2:] == pytest.approx([1e-4, 1e-3, 1e-2])
    wrong = L.q3(slice(1e-4, 1e-2))  # the tempting answer: lo for block2, but the stem gets lo
    assert not wrong and "block2 1.0e-03" in wrong.message and "frozen ones included" in wrong.message
    assert not L.q3(1e-2) and "slice" in L.q3(1e-2).message
    assert not L.q3(slice(None, 1e-2))  # slice(hi): hi / 10 for every group but the head
    assert not L.q3(slice(1e-2, 1e-4))  # lo > hi: not a valid slice of rates


def _adamw(model, rates):
    groups = {g.name: g for g in ft.layer_groups(model)}
    return torch.optim.AdamW([{"params": groups[name].params, "lr": lr} for name, lr in rates.items()])


def test_q4_plain_pytorch_parameter_groups():
    rates = {"block2": 1e-4, "block3": 1e-3, "head": 1e-2}
    assert L.q4(_adamw(_model(), rates))
    # the frozen groups may be in the optimizer when their requires_grad is off
    model = ft.freeze_to(_model(), 2)
    assert L.q4(_adamw(model, {"stem": 1e-6, "block1": 1e-5, **rates}))
    # ... but not when they would train
    wrong = L.q4(_adamw(_model(), {"stem": 1e-6, "block1": 1e-5, **rates}))
    assert not wrong and "ft.layer_groups" in wrong.message
    assert not L.q4(_adamw(_model(), {"block2": 1e-3, "block3": 1e-3, "head": 1e-2}))  # a wrong rate
    assert not L.q4(_adamw(_model(), {"block3": 1e-3, "head": 1e-2}))  # block2 missing
    assert not L.q4(ft.make_optimizer(ft.freeze_to(_model(), 2), lr=slice(1e-4, 1e-2)))  # the slice of Q3's trap
    assert "torch optimizer" in L.q4([1e-4, 1e-3, 1e-2]).message


def test_q5_refuses_what_it_cannot_judge_without_training():
    assert "ft.Strategy" in L.q5("discriminative").message
    assert "random weights" in L.q5(ft.strategies.scratch()).message
    assert "at most" in L.q5(ft.strategies.full(epochs=50)).message


def test_q5_trains_a_recipe_and_judges_it_on_validation_and_the_source_task():
    good = L.q5(ft.strategies.gradual_unfreeze(lr=slice(1e-4, 1e-2)))  # measured: val 95%, source 89%
    assert good and "validation" in good.message and "test accuracy" in good.message
    forgets = L.q5(ft.strategies.full(lr=1e-2, epochs=1))  # measured: source 15% after a single epoch
    assert not forgets and "body moved too far" in forgets.message and "test" not in forgets.message
    probe = L.q5(ft.strategies.linear_probe(lr=1e-2))  # keeps the source task, but the body never trains
    assert not probe and "never" in probe.message
