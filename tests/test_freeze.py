"""Freezing, unfreezing, BatchNorm modes and the trainable-parameter summary."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import ftkit as ft
from ftkit.tuning.freeze import bn_mode


def _tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten()),
        nn.Linear(8, 3),
    )


def _train_step(model):
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5, momentum=0.9)
    x, y = torch.randn(16, 3, 8, 8) * 3 + 1, torch.randint(0, 3, (16,))
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, -1, -2])
def test_freeze_to_leaves_exactly_the_expected_groups_trainable(n):
    model = ft.load_model("resnet18", num_classes=5, pretrained=False)
    groups = ft.layer_groups(model)
    ft.freeze_to(model, n)
    cut = n % len(groups) if n < 0 else n
    expected = {name for g in groups[cut:] for name in g.names}
    assert _trainable_names(model) == expected
    summary = ft.trainable_summary(model)
    assert [r["trainable"] for r in summary.rows] == [0] * cut + [g.numel for g in groups[cut:]]


def test_freeze_keeps_only_the_head_and_unfreeze_restores_all():
    model = ft.load_model("mobilenet_v3_small", num_classes=4, pretrained=False)
    ft.freeze(model)
    assert _trainable_names(model) == {"classifier.3.weight", "classifier.3.bias"}
    ft.unfreeze(model)
    assert _trainable_names(model) == {n for n, _ in model.named_parameters()}
    assert all(ft.bn_mode(m) is None for m in model.modules())


def test_frozen_batchnorm_statistics_are_bit_identical_after_training():
    model = _tiny_cnn()
    ft.freeze_to(model, 2)  # first two blocks frozen, BatchNorm "frozen"
    before = copy.deepcopy(model.state_dict())
    model.train()  # the pitfall: train() would normally switch BatchNorm back to batch statistics
    for _ in range(3):
        _train_step(model)
    after = model.state_dict()
    for key in before:
        if key.startswith(("0.", "1.")):
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["2.1.running_mean"], after["2.1.running_mean"])  # trainable block moves
    assert not torch.equal(before["3.weight"], after["3.weight"])
    assert model[0][1].training is False and ft.bn_mode(model[0][1]) == "frozen"


def test_batchnorm_train_mode_lets_statistics_move_but_not_weights():
    model = _tiny_cnn()
    ft.freeze_to(model, 2, bn="train")
    before = copy.deepcopy(model.state_dict())
    _train_step(model)
    after = model.state_dict()
    assert torch.equal(before["0.1.weight"], after["0.1.weight"])
    assert torch.equal(before["0.0.weight"], after["0.0.weight"])
    assert not torch.equal(before["0.1.running_mean"], after["0.1.running_mean"])
    rows = {r["group"]: r for r in ft.trainable_summary(model).rows}
    assert rows["0"]["BatchNorm"] == "train" and rows["2"]["BatchNorm"] == "trains"


def test_frozen_mode_survives_deepcopy_and_is_undone_by_unfreeze():
    model = _tiny_cnn()
    ft.freeze(model)
    clone = copy.deepcopy(model)
    clone.train()
    x = torch.randn(4, 3, 8, 8)
    mean = clone[0][1].running_mean.clone()
    clone(x)
    assert torch.equal(mean, clone[0][1].running_mean)
    ft.unfreeze(clone)
    clone.train()
    clone(x)
    assert not torch.equal(mean, clone[0][1].running_mean)
    assert clone[0][1].training


def test_switching_a_frozen_batchnorm_to_train_mode():
    model = _tiny_cnn()
    ft.freeze(model)
    ft.freeze(model, bn="train")
    model.train()
    mean = model[0][1].running_mean.clone()
    model(torch.randn(4, 3, 8, 8))
    assert not torch.equal(mean, model[0][1].running_mean)


def test_patterns_freeze_by_name():
    model = ft.load_model("minilm-l6", num_classes=5, pretrained=False)
    ft.freeze(model, r"encoder\.layer\.[0-3]\.")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(any(f"encoder.layer.{i}." in n for i in range(4)) for n in frozen)
    assert "bert.encoder.layer.4.output.dense.weight" not in frozen
    ft.unfreeze(model, r"encoder\.layer\.0\.")
    assert model.bert.encoder.layer[0].output.dense.weight.requires_grad
    assert not model.bert.encoder.layer[1].output.dense.weight.requires_grad


def test_summary_totals_and_text():
    model = _tiny_cnn()
    ft.freeze(model)
    summary = ft.trainable_summary(model)
    total = sum(p.numel() for p in model.parameters())
    assert sum(r["params"] for r in summary.rows) == total
    assert f"trainable: 27 of {total:,}" in str(summary)
    assert "<table>" in summary._repr_html_()


def test_bad_freeze_arguments():
    model = _tiny_cnn()
    with pytest.raises(ValueError, match="-4 <= n <= 4"):
        ft.freeze_to(model, 9)
    with pytest.raises(ValueError, match="bn must be"):
        ft.freeze(model, bn="eval")
    with pytest.raises(ValueError, match="No parameter name matches"):
        ft.freeze(model, "decoder")
    with pytest.raises(ValueError, match="regular expression"):
        ft.freeze(model, "([")


def test_a_batchnorm_without_parameters_follows_the_layer_it_normalises():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8, affine=False), nn.ReLU()),
                          nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8, affine=False)), nn.Linear(8, 3))
    first, second = model[0][1], model[1][1]
    ft.freeze_to(model, 1)  # the first block frozen: its BatchNorm keeps its statistics
    assert bn_mode(first) == "frozen" and bn_mode(second) is None
    start = first.running_mean.clone()
    model.train()
    model(torch.randn(16, 6) + 3)
    assert torch.equal(first.running_mean, start) and not torch.equal(second.running_mean, torch.zeros(8))
    ft.freeze(model, bn="train")
    assert bn_mode(first) == bn_mode(second) == "train"
    ft.unfreeze(model)
    assert bn_mode(first) is None and bn_mode(second) is None


def test_fit_keeps_the_statistics_of_a_frozen_batchnorm_without_parameters_on_both_paths():
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(48, 6) + 2, torch.randint(0, 3, (48,)))
    runs = {}
    for cache in (True, False):
        torch.manual_seed(0)
        # the BatchNorm sits between the frozen layer and the head, in no frozen container of its own
        model = ft.freeze(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8, affine=False), nn.Linear(8, 3)))
        history = ft.fit(model, data, epochs=2, batch_size=16, feature_cache=cache, progress=False, live=False)
        assert torch.equal(model[1].running_mean, torch.zeros(8)), cache  # never updated
        runs[cache] = (model[2].weight.detach().clone(), history.info["path"])
    assert runs[True][1] == "feature-cache" and runs[False][1] == "full"
    assert torch.allclose(runs[True][0], runs[False][0], atol=1e-5)  # the same head, within float rounding
