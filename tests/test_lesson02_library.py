"""What lesson 02 relies on from the library, checked here rather than claimed in the lesson."""
from itertools import pairwise

import pytest
import torch
from torch import nn

import ftkit as ft
from ftkit.experiments.strategies import set_trainable
from ftkit.train.feature_cache import clear_feature_cache

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return ft.load_dataset("digits", "glyph-resnet", seed=0, val_size=100)


def _trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_the_strategies_train_what_section_3_sets_by_hand():
    by_hand = {"scratch": None, "linear probe": ("fc.",), "partial-2": ("block3.", "fc."), "full": None}
    for strategy in (ft.strategies.scratch(), ft.strategies.linear_probe(), ft.strategies.partial(2),
                     ft.strategies.full()):
        model = ft.load_model("glyph-resnet", num_classes=10)
        set_trainable(model, strategy.freeze)  # what run_strategy does before fit
        prefixes = by_hand[strategy.name]
        expected = {n for n, _ in model.named_parameters() if prefixes is None or n.startswith(prefixes)}
        assert _trainable_names(model) == expected, strategy.name


def test_a_head_replaced_by_identity_returns_the_features_the_head_reads(digits):
    model = ft.load_model("glyph-resnet", num_classes=10).eval()
    assert ft.head_name(model) == "fc"
    some = digits.test.subset(range(32))
    reference = ft.features(model, some).values
    model.fc = nn.Identity()
    x = torch.stack([some[i][0] for i in range(len(some))])
    with torch.no_grad():
        assert torch.allclose(model(x), reference, atol=1e-5)


def test_the_probe_runs_its_backbone_once_per_image_and_partial_once_per_image_and_epoch(digits):
    """The feature cache, counted: what makes the linear probe's epochs cheap (section 4's path column)."""
    train, val = ft.few_shot(digits.train, 2, seed=0), digits.val
    seen = {}
    for strategy in (ft.strategies.linear_probe(), ft.strategies.partial(2)):
        for epochs in (1, 3):
            clear_feature_cache()  # features kept from an earlier fit would hide the count
            model = ft.load_model("glyph-resnet", num_classes=10)
            count = [0]

            def seen_by_the_backbone(_module, args, _output, count=count):
                count[0] += len(args[0])

            model.block1.register_forward_hook(seen_by_the_backbone)
            history = ft.run_strategy(strategy, model, train, val, epochs=epochs, batch_size=8, progress=False)
            seen[strategy.name, epochs] = (count[0], history.info["path"])
    images = len(train) + len(val)
    probe, partial = (seen["linear probe", 1], seen["linear probe", 3]), (seen["partial-2", 1], seen["partial-2", 3])
    assert probe[0][1] == probe[1][1] == "feature-cache" and partial[0][1] == partial[1][1] == "full"
    assert probe[0][0] == probe[1][0] < 2 * images  # features once, whatever the number of epochs
    assert partial[1][0] - partial[0][0] == 2 * images  # every image through the backbone in every epoch


def test_slice_hi_gives_the_head_hi_and_every_other_group_a_tenth(digits):
    model = ft.load_model("glyph-resnet", num_classes=10)
    groups = ft.param_groups(model, lr=slice(1e-2))
    rates = {g["group"]: g["lr"] for g in groups}
    assert rates.pop("head") == pytest.approx(1e-2)
    assert rates and all(lr == pytest.approx(1e-3) for lr in rates.values())
    assert {g["group"] for g in groups} == {g.name for g in ft.layer_groups(model)}


def test_few_shot_sizes_nest_so_the_curve_adds_examples(digits):
    for seed in (0, 1, 2):
        drawn = [set(ft.few_shot(digits.train, k, seed=seed).indices) for k in (1, 2, 4, 8, 16)]
        assert all(small < large for small, large in pairwise(drawn))
        assert [len(d) for d in drawn] == [10, 20, 40, 80, 160]


def test_data_efficiency_reuses_the_runs_compare_cached(digits):
    settings = {"model": "glyph-resnet", "data": digits, "seeds": [0, 1], "epochs": 1, "batch_size": 16,
                "progress": False}
    board = ft.compare([ft.strategies.linear_probe()], per_class=2, **settings)
    curve = ft.data_efficiency([ft.strategies.linear_probe()], per_class=[1, 2], **settings)
    by_size = {k: [run for run in curve.runs if run["per_class"] == k] for k in (1, 2)}
    assert not any(run["cached"] for run in board.runs)
    assert all(run["cached"] for run in by_size[2]) and not any(run["cached"] for run in by_size[1])
    assert [run["accuracy"] for run in by_size[2]] == [run["accuracy"] for run in board.runs]
