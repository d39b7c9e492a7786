"""Properties of freezing, layer groups, parameter groups and evaluation, on many random small models.

hypothesis draws the models (blocks with BatchNorm with or without affine parameters, dropout,
tied weights, LoRA) and the freeze depths; each property must hold for every draw.
"""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

import ftkit as ft
from ftkit.tuning.freeze import bn_mode

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WIDTH = 6


class Tied(nn.Module):
    """A body between an input projection and an output layer that shares its weight (as language models tie)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.embed = nn.Linear(WIDTH, WIDTH, bias=False)
        self.body = body
        self.out = nn.Linear(WIDTH, WIDTH, bias=False)
        self.out.weight = self.embed.weight  # one parameter under two names

    def forward(self, x):
        return self.out(self.body(self.embed(x)))


@st.composite
def models(draw):
    """A random small classifier: 1-4 blocks, each a Linear with optional BatchNorm (affine or not) and dropout."""
    torch.manual_seed(draw(st.integers(0, 1000)))
    blocks = []
    for _ in range(draw(st.integers(1, 4))):
        layers = [nn.Linear(WIDTH, WIDTH)]
        norm = draw(st.sampled_from(["none", "affine", "plain"]))
        if norm != "none":
            layers.append(nn.BatchNorm1d(WIDTH, affine=norm == "affine"))
        layers.append(nn.ReLU())
        if draw(st.booleans()):
            layers.append(nn.Dropout(draw(st.sampled_from([0.1, 0.5]))))
        blocks.append(nn.Sequential(*layers))
    body = nn.Sequential(*blocks)
    model = Tied(body) if draw(st.booleans()) else nn.Sequential(body, nn.Linear(WIDTH, 3))
    if draw(st.booleans()):
        ft.add_lora(model, r=2, targets=r"body\.\d+\.0$|^0\.\d+\.0$")
    return model


def unique_params(model):
    return list(model.parameters())  # deduplicated: a tied weight once


@SETTINGS
@given(models())
def test_every_parameter_is_in_exactly_one_layer_group_in_order(model):
    groups = ft.layer_groups(model)
    ids = [id(p) for g in groups for p in g.params]
    assert sorted(ids) == sorted(id(p) for p in unique_params(model))  # all of them, each once
    names = [n for g in groups for n in g.names]
    assert len(names) == len(set(names))


@SETTINGS
@given(models(), st.data())
def test_freeze_to_trains_exactly_the_groups_asked_for(model, data):
    groups = ft.layer_groups(model)
    n = data.draw(st.integers(-len(groups), len(groups)), label="n")
    ft.freeze_to(model, n)
    cut = n % len(groups) if n < 0 else n
    expected = {id(p) for g in groups[cut:] for p in g.params}
    assert {id(p) for p in model.parameters() if p.requires_grad} == expected
    for module in model.modules():  # a BatchNorm is frozen exactly when it is in a frozen place
        if isinstance(module, nn.BatchNorm1d) and module.affine:
            frozen = not module.weight.requires_grad
            assert (bn_mode(module) == "frozen") == frozen


@SETTINGS
@given(models(), st.data())
def test_freeze_and_unfreeze_round_trip(model, data):
    groups = ft.layer_groups(model)
    n = data.draw(st.integers(-len(groups), len(groups)), label="n")
    snapshot = lambda: ([p.requires_grad for p in model.parameters()], [bn_mode(m) for m in model.modules()])
    ft.freeze_to(model, n)
    once = snapshot()
    ft.freeze_to(model, n)
    assert snapshot() == once  # idempotent
    ft.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())
    assert all(bn_mode(m) is None for m in model.modules())
    ft.freeze_to(model, n)
    assert snapshot() == once  # and back


@SETTINGS
@given(models(), st.sampled_from([1e-3, slice(1e-5, 1e-3)]), st.sampled_from([0.0, 0.01]))
def test_every_parameter_is_in_exactly_one_optimizer_group_and_only_matrices_decay(model, lr, decay):
    groups = ft.param_groups(model, lr, weight_decay=decay)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in unique_params(model))
    for g in groups:
        assert all(p.ndim > 1 for p in g["params"]) if g["weight_decay"] else True
        assert g["weight_decay"] in (0.0, decay)
        if any(p.ndim == 1 for p in g["params"]):
            assert g["weight_decay"] == 0.0  # biases and norm parameters never decay
    if isinstance(lr, slice):
        rates = [g["lr"] for g in sorted(groups, key=lambda g: g["layer"])]
        assert rates == sorted(rates) and rates[-1] == lr.stop  # input -> output, the head fastest


@SETTINGS
@given(models(), st.data())
def test_evaluate_leaves_every_module_mode_and_weight_as_it_was(model, data):
    for module in model.modules():
        module.training = data.draw(st.booleans(), label="mode")
    modes = [m.training for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    classes = 3 if isinstance(model, nn.Sequential) else WIDTH
    x = torch.randn(10, WIDTH)
    ft.evaluate(model, TensorDataset(x, torch.arange(10) % classes), batch_size=4)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
