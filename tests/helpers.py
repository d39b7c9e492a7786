"""Small things several test files share: a toy dataset and exact state comparisons."""
import torch
from torch.utils.data import TensorDataset


def blobs(n=96, seed=0):
    """96 points in 6-D, 3 classes from two thresholds: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return TensorDataset(x, y)


def state(model):
    """A copy of the model's state dict (weights and buffers)."""
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    """Two state dicts are bit-identical."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
