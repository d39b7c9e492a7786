"""What lesson 03 shows of the library, checked on glyph-resnet (offline, small).

The lesson prints trainable counts from the freeze-depth slider and from gradual
unfreezing; these tests pin down that those numbers are what they claim to be.
"""
import pytest
import torch
from torch.utils.data import TensorDataset

import ftkit as ft

pytestmark = pytest.mark.usefixtures("one_thread")


def _model():
    return ft.load_model("glyph-resnet", num_classes=10)


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_freeze_explorer_counts_equal_counts_by_hand_at_every_depth():
    model = _model()
    groups = ft.layer_groups(model)
    total = sum(p.numel() for p in model.parameters())
    explorer = ft.FreezeExplorer(model)
    counts = []
    for depth in range(len(groups) + 1):
        explorer.controls["depth"].value = depth  # what moving the slider does
        by_hand = _trainable(model)
        assert explorer.trainable == by_hand, depth
        assert f"trainable: {by_hand:,} of" in explorer.total.value, depth  # the figure on the page
        counts.append(by_hand)
    assert counts[0] == total and counts[-2] == groups[-1].numel and counts[-1] == 0


def test_freezing_one_more_group_removes_exactly_that_groups_parameters():
    model = _model()
    groups = ft.layer_groups(model)
    for depth in range(len(groups) + 1):
        ft.freeze_to(model, depth)
        trains = {id(p) for p in model.parameters() if p.requires_grad}
        assert trains == {id(p) for g in groups[depth:] for p in g.params}, depth
        assert _trainable(model) == sum(g.numel for g in groups[depth:]), depth


@pytest.mark.parametrize("every", [1, 2])
def test_gradual_unfreezing_adds_one_group_from_the_top_every_k_epochs(every):
    model = _model()
    sizes = [g.numel for g in ft.layer_groups(model)]
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(8, 1, 32, 32, generator=g), torch.arange(8) % 10)
    epochs = (len(sizes) - 1) * every + 1  # the last epoch is the first in which every group trains
    history = ft.fit(model, data, epochs=epochs, lr=1e-4, unfreeze_every=every, batch_size=8, progress=False,
                     device="cpu")
    expected = [sum(sizes[-(1 + e // every):]) for e in range(epochs)]
    assert history.metric("trainable") == expected
    assert expected[0] == sizes[-1] and expected[-1] == sum(sizes)  # the head alone first, everything last
    assert all(p.requires_grad for p in model.parameters())  # what trains is the caller's again afterwards
