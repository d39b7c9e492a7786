"""ft.features reads what the head sees; nearest-mean accuracy, PCA and the pictures (seconds, tiny models)."""
from collections import OrderedDict

import matplotlib
import pytest
import torch
from helpers import blobs
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import TensorDataset

import ftkit as ft


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(body=nn.Sequential(nn.Linear(6, 5), nn.ReLU()), head=nn.Linear(5, 3)))


def test_features_are_the_heads_input_in_order_and_the_model_is_unchanged():
    model, data = tiny(), blobs()
    model.train()
    f = ft.features(model, data, batch_size=7)
    x, y = data.tensors
    with torch.no_grad():
        expected = model.body(x)
    assert torch.allclose(f.values, expected, atol=1e-6) and torch.equal(f.labels, y)
    assert f.layer == "head" and f.dim == 5 and len(f) == len(data) and model.training  # mode restored
    assert "96 examples x 5 features" in repr(f)
    assert len(ft.features(model, data, max_examples=10)) == 10


def test_features_of_a_zoo_model_equal_its_forward_features():
    model = ft.load_model("glyph-resnet")
    test = ft.load_dataset("digits", model, seed=0).test.subset(range(40))
    f = ft.features(model, test)
    model.eval()
    with torch.no_grad():
        expected = model.forward_features(torch.stack([test[i][0] for i in range(40)]))
    assert torch.allclose(f.values, expected, atol=1e-5) and f.classes == [str(d) for d in range(10)]
    assert f.labels.tolist() == test.targets


def test_features_of_a_model_without_a_usable_head_fail_clearly():
    class TwoCalls(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(6, 3)

        def forward(self, x):
            return self.head(x) + self.head(x)

    with pytest.raises(ValueError, match="head 'head'"):
        ft.features(TwoCalls(), blobs())


def test_nearest_mean_accuracy_against_a_hand_count():
    train = ft.Features(torch.tensor([[0.0, 0], [0, 2], [10, 0], [10, 2]]), torch.tensor([0, 0, 1, 1]))
    test = ft.Features(torch.tensor([[1.0, 1], [9, 1], [4, 1], [6, 1]]), torch.tensor([0, 1, 1, 1]))
    assert ft.nearest_mean_accuracy(train, test) == 0.75  # (4, 1) is nearer class 0's mean (0, 1)
    with pytest.raises(ValueError, match="same model"):
        ft.nearest_mean_accuracy(train, ft.Features(torch.zeros(2, 3), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="regression"):
        ft.nearest_mean_accuracy(train, ft.Features(torch.zeros(2, 2), torch.tensor([0.5, 1.5])))


def test_pca_matches_the_top_singular_vectors_and_the_variance_shares():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g) * torch.tensor([5.0, 2.0, 1.0, 0.1])
    f = ft.Features(x, torch.zeros(200, dtype=torch.long))
    points, share = f.pca(2)
    assert points.shape == (200, 2) and share[0] > share[1] > 0 and sum(share) <= 1
    centred = x - x.mean(0)
    assert torch.allclose(points.abs().sum(0), (centred[:, :2]).abs().sum(0), rtol=0.1)  # axes ~ the two widest
    assert torch.allclose(points.var(0) * 199 / (centred**2).sum(), torch.tensor(share), atol=1e-4)
    again, _ = ft.Features(x.clone(), f.labels).pca(2)
    assert torch.equal(points, again)  # deterministic, signs fixed
    with pytest.raises(ValueError, match="k must be"):
        f.pca(5)


def test_plots_draw_figures_without_showing_them():
    matplotlib.use("Agg")
    model = ft.load_model("glyph-resnet")
    test = ft.load_dataset("digits", model, seed=0).test.subset(range(30))
    f = ft.features(model, test)
    fig = ft.plot_features({"pre-trained": f, "again": f})
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and "192-D" in fig._suptitle.get_text()
    pred = ft.predict(ft.load_model("glyph-resnet", num_classes=10), test)
    fig = ft.plot_examples(test, 10, predicted=pred, columns=5)
    assert len(fig.axes) == 10 and "→" in fig.axes[0].get_title()
    raw = ft.load_dataset("digits", seed=0).test
    assert ft.plot_examples(raw, 3).axes[0].get_title() == raw.classes[raw.targets[0]]
    with pytest.raises(ValueError, match="predictions"):
        ft.plot_examples(test, 10, predicted=["1"])
    with pytest.raises(TypeError, match="image"):
        ft.plot_examples(TensorDataset(torch.zeros(3, 6), torch.zeros(3)), 3)
    with pytest.raises(TypeError, match="ft.features"):
        ft.plot_features({"x": torch.zeros(3)})
