"""Parameter groups, weight decay, discriminative learning rates and schedules."""
import copy
import math

import pytest
import torch
from torch import nn

import ftkit as ft
from ftkit.core.schedules import lr_factor
from ftkit.train.optim import group_lrs, make_optimizer, make_scheduler, optimizer_summary, param_groups
from ftkit.tuning.freeze import freeze_to


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)),
        nn.Linear(8, 3),
    )


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=50, n_positions=8))


def test_no_weight_decay_on_biases_and_normalisation():
    for g in param_groups(cnn(), lr=1e-3, weight_decay=0.1):
        for name, p in zip(g["names"], g["params"]):
            if p.ndim <= 1:  # biases, BatchNorm and LayerNorm scales and shifts
                assert g["weight_decay"] == 0.0, name
            else:
                assert g["weight_decay"] == 0.1, name


def test_decay_really_skips_one_dimensional_parameters():
    model = cnn()
    optimizer = make_optimizer(model, "adamw", lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient signal: only weight decay can move a parameter
    optimizer.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (p.ndim <= 1), n


@pytest.mark.parametrize("make_model", [cnn, tiny_gpt2])
def test_every_parameter_in_exactly_one_group(make_model):
    model = make_model()  # GPT-2 ties its output layer to the token embedding: counted once
    freeze_to(model, -2)
    groups = param_groups(model, lr=slice(1e-5, 1e-3), weight_decay=0.01)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} <= set(ids)


def test_frozen_parameters_are_not_touched_even_with_weight_decay():
    model = cnn()
    freeze_to(model, -1)
    optimizer = make_optimizer(model, "adamw", lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != p.requires_grad, n
        assert (p in optimizer.state) == p.requires_grad  # no optimizer state for frozen parameters


def test_slice_spreads_rates_geometrically_with_the_head_at_hi():
    lrs = group_lrs(slice(1e-5, 1e-1), 5)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == 1e-1
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert ratios == pytest.approx([10.0] * 4)
    assert group_lrs(slice(1e-2), 3) == [1e-3, 1e-3, 1e-2]  # fastai: slice(hi) = hi/10 below the head
    assert group_lrs(1e-3, 2, lr_mult=[0.5, 2]) == [5e-4, 2e-3]
    groups = param_groups(cnn(), lr=slice(1e-4, 1e-2))
    per_layer = {g["layer"]: g["lr"] for g in groups}
    assert per_layer[0] == pytest.approx(1e-4) and per_layer[3] == 1e-2
    with pytest.raises(ValueError, match="4 layer groups"):
        group_lrs(1e-3, 4, lr_mult=[1, 2])
    with pytest.raises(ValueError, match="not both"):
        group_lrs(slice(1e-4, 1e-3), 4, lr_mult=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        group_lrs(slice(1e-2, 1e-4), 3)


def test_cosine_with_warmup():
    f = lr_factor("cosine", total_steps=110, warmup=10)
    assert [f(s) for s in (0, 4, 9)] == pytest.approx([1 / 11, 5 / 11, 10 / 11])  # linear warmup, never 0
    assert f(10) == 1.0
    assert f(60) == pytest.approx(0.5)  # half way down the cosine
    assert f(109) == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))
    values = [f(s) for s in range(10, 110)]
    assert values == sorted(values, reverse=True)


def test_onecycle_rises_to_its_peak_then_anneals():
    f = lr_factor("onecycle", total_steps=100, warmup=25)
    assert f(0) == pytest.approx(1 / 25)
    assert f(25) == 1.0 and max(f(s) for s in range(100)) == 1.0
    rising, falling = [f(s) for s in range(26)], [f(s) for s in range(25, 100)]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)
    assert f(99) < 1e-3


def test_step_and_constant():
    f = lr_factor("step", total_steps=100, steps_per_epoch=10, step_size=3, gamma=0.5)
    assert [f(s) for s in (0, 29, 30, 60, 99)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    g = lr_factor("step", total_steps=100, gamma=0.1)  # default: drops at 1/2 and 3/4
    assert [g(s) for s in (49, 50, 74, 75)] == pytest.approx([1.0, 0.1, 0.1, 0.01])
    h = lr_factor("constant", total_steps=100, warmup=3)
    assert [h(s) for s in (0, 2, 3, 99)] == [0.25, 0.75, 1.0, 1.0]


def test_scheduler_sets_each_groups_lr_and_warmup_fraction():
    model = cnn()
    optimizer = make_optimizer(model, "sgd", lr=slice(1e-3, 1e-1))
    scheduler = make_scheduler(optimizer, "cosine", total_steps=40, warmup=0.25)  # 10 warmup steps
    peaks = [g["initial_lr"] for g in optimizer.param_groups]
    seen = []
    for _ in range(40):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen[10] == pytest.approx(peaks)  # the peak right after warmup, in every group
    assert seen[0] == pytest.approx([p / 11 for p in peaks])
    assert optimizer.param_groups[0]["momentum"] == 0.9
    table = optimizer_summary(optimizer)
    assert len(table) == len(optimizer.param_groups) and table[-1]["group"] == "3"


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer(cnn(), "adagrad")
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_factor("linear", 10)
    with pytest.raises(ValueError, match="fraction"):
        make_scheduler(make_optimizer(cnn()), "cosine", 10, warmup=2.0)


def test_position_embeddings_and_class_tokens_of_vision_transformers_never_decay():
    import torchvision

    torch.manual_seed(0)
    cases = {
        "glyph-vit": (ft.load_model("glyph-vit", num_classes=10), {"pos_embed", "cls_token"}),
        "torchvision": (torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2,
                                                             hidden_dim=16, mlp_dim=16, num_classes=3),
                        {"encoder.pos_embedding", "class_token"}),
    }
    for name, (model, tokens) in cases.items():
        decayed = {n for g in param_groups(model, 1e-3, weight_decay=0.1) if g["weight_decay"] for n in g["names"]}
        assert tokens <= {n for n, _ in model.named_parameters()}, name
        assert not tokens & decayed, name  # not decayed
        assert any(n.endswith("weight") for n in decayed), name  # the weight matrices still are


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_adam_and_adamw_use_the_fused_kernel_where_it_exists_and_step_like_torchs_own(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    optimizer = make_optimizer(model, name, lr=1e-2, weight_decay=0.1)
    assert optimizer.defaults["fused"] is True  # CPU float parameters: torch's fused kernel
    same = copy.deepcopy(model)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    reference = cls(param_groups(same, lr=1e-2, weight_decay=0.1), fused=True)
    for net, opt in ((model, optimizer), (same, reference)):
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for a, b in zip(model.parameters(), same.parameters()):
        assert torch.equal(a, b)


def test_parameters_the_fused_kernel_does_not_take_get_the_per_tensor_loop():
    model = nn.Linear(3, 2).to(torch.complex64)  # complex weights: the fused kernel has no complex version
    optimizer = make_optimizer(model, "adamw", lr=1e-2)
    assert not optimizer.defaults.get("fused")
    model(torch.ones(1, 3, dtype=torch.complex64)).abs().sum().backward()
    optimizer.step()  # and it steps
