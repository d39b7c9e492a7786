"""Features of a frozen backbone outlive a fit call: reused exactly, and only while backbone and data are the same."""
import pytest
import torch
from helpers import assert_same, blobs, state
from torch import nn

import ftkit as ft
from ftkit.data.labeled import ImageDataset
from ftkit.data.transforms import ImageTransform
from ftkit.train import feature_cache


def images(n=60, seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, size, size), generator=g, dtype=torch.uint8)
    y = (x.float().mean((1, 2)) > 127.5).long().tolist()
    return ImageDataset(x, y, ["dark", "light"], transform=ImageTransform(1, (8, 8), (0.5,), (0.25,)))


def cnn():
    torch.manual_seed(3)
    body = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = nn.Sequential()
    model.add_module("body", body)
    model.add_module("head", nn.Linear(8, 2))
    return model


def probe(train, val=None, model=None, seed=0, **kwargs):
    model = model or cnn()
    ft.freeze(model)
    history = ft.fit(model, train, val, epochs=3, lr=1e-2, batch_size=16, seed=seed, progress=False, **kwargs)
    return model, history


@pytest.fixture(autouse=True)
def empty_cache():
    feature_cache.clear_feature_cache()
    yield
    feature_cache.clear_feature_cache()


def test_second_probe_reuses_features_and_trains_exactly_as_if_computed():
    train, val = images(), images(seed=1)
    first, h1 = probe(train, val)
    assert h1.info["path"] == "feature-cache" and h1.info["features"] == {"train": "computed", "val": "computed"}
    again, h2 = probe(train, val)  # a fresh model with the same backbone weights
    assert h2.info["features"] == {"train": "reused", "val": "reused"}
    assert_same(state(first), state(again))
    assert [e["val_loss"] for e in h1.epochs] == [e["val_loss"] for e in h2.epochs]
    feature_cache.clear_feature_cache()
    fresh, h3 = probe(train, val)
    assert h3.info["features"]["train"] == "computed"
    assert_same(state(fresh), state(again))  # reused features are exactly the computed ones


def test_changed_backbone_or_data_recomputes():
    train = images()
    probe(train)
    model = cnn()
    with torch.no_grad():
        model.body[0].weight[0, 0, 0, 0] += 1e-3  # one weight of the frozen backbone
    assert probe(train, model=model)[1].info["features"]["train"] == "computed"
    assert probe(train, model=model)[1].info["features"]["train"] == "reused"
    model = cnn()
    model.body[1].running_mean += 0.1  # a buffer, not a parameter
    assert probe(train, model=model)[1].info["features"]["train"] == "computed"

    assert probe(train.subset(range(50)))[1].info["features"]["train"] == "computed"  # other examples
    relabelled = train.subset(range(len(train)))
    relabelled.targets[0] = 1 - relabelled.targets[0]
    assert probe(relabelled)[1].info["features"]["train"] == "computed"
    renormalised = train.subset(range(len(train)))
    renormalised.transform = ImageTransform(1, (8, 8), (0.4,), (0.25,))
    assert probe(renormalised)[1].info["features"]["train"] == "computed"
    train.inputs[0, 0, 0] ^= 1  # the same dataset object, edited in place
    assert probe(train)[1].info["features"]["train"] == "computed"


def test_a_new_head_size_reuses_the_backbone_features():
    train = images()
    probe(train)
    model = cnn()
    model.head = nn.Linear(8, 5)  # e.g. a probe for another label set on the same inputs
    assert probe(train, model=model)[1].info["features"]["train"] == "reused"


def test_data_without_a_fingerprint_is_never_reused():
    for _ in range(2):
        model = nn.Sequential(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), nn.Linear(8, 3))
        ft.freeze(model)
        history = ft.fit(model, blobs(), epochs=1, progress=False)  # a TensorDataset: content unknown
        assert history.info["path"] == "feature-cache" and history.info["features"]["train"] == "computed"
    assert not feature_cache._STORE


def test_the_store_keeps_at_most_max_bytes(monkeypatch):
    monkeypatch.setattr(feature_cache, "MAX_BYTES", 60 * 8 * 4 + 60 * 8 + 10)  # one split's features
    probe(images(seed=0))
    probe(images(seed=1))
    assert len(feature_cache._STORE) == 1  # the oldest went
    assert probe(images(seed=1))[1].info["features"]["train"] == "reused"
    assert probe(images(seed=0))[1].info["features"]["train"] == "computed"


def test_fingerprints_follow_content():
    a, b = images(), images()
    assert a.fingerprint() == b.fingerprint() and a.fingerprint() != images(seed=2).fingerprint()
    assert ImageDataset(a.inputs, a.targets, a.classes, transform=lambda x: x).fingerprint() is None
    text = ft.data.labeled.TextDataset(["a b", "c"], [0, 1], ["x", "y"])
    assert text.fingerprint() == ft.data.labeled.TextDataset(["a b", "c"], [0, 1], ["x", "y"]).fingerprint()
    assert text.fingerprint() != ft.data.labeled.TextDataset(["a b", "d"], [0, 1], ["x", "y"]).fingerprint()


class _WithDropout(nn.Module):
    """A frozen body, then a dropout as a child of the model (as Hugging Face classifiers have), then the head."""

    def __init__(self, extra_dropout: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
        self.inner = nn.Dropout(0.3) if extra_dropout else nn.Identity()  # between frozen layers
        self.more = nn.Linear(16, 16)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.dropout(self.more(self.inner(self.body(x)))))


def _probe(model, cache):
    ft.freeze(model)
    history = ft.fit(model, blobs(), blobs(seed=1), epochs=3, batch_size=16, lr=1e-2, seed=0, feature_cache=cache,
                     progress=False, live=False)
    return model.head.weight.detach().clone(), history


def test_a_dropout_right_before_the_head_is_applied_to_the_cached_features():
    cached_head, cached = _probe(_WithDropout(), True)
    full_head, full = _probe(_WithDropout(), False)
    assert cached.info["path"] == "feature-cache" and cached.info["feature_dropout"] == 0.5
    assert "dropout before the head" in cached.info["path_reason"]
    # the same masks are drawn on both paths, so the heads agree within float rounding
    assert torch.allclose(cached_head, full_head, atol=1e-5)
    assert [round(e["train_loss"], 5) for e in cached.epochs] == [round(e["train_loss"], 5) for e in full.epochs]


def test_an_active_dropout_elsewhere_refuses_the_cache():
    _, history = _probe(_WithDropout(extra_dropout=True), True)
    assert history.info["path"] == "full" and "inner" in history.info["path_reason"]
