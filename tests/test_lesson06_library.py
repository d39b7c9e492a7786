"""What lesson 06 relies on from the library, checked on glyph-resnet.

- a fit callback's ``on_fit_end`` can record a score in ``history.info``, and ``compare``'s result
  cache gives it back (the lesson records the source task's test accuracy that way, and a second
  run of the lesson reads it from the cache);
- ``ft.EWC(model, fisher=...)`` made from a freshly loaded model with a new head is anchored at the
  pre-trained body, and its penalty is 0 there (the lesson's EWC factory);
- ``ft.Rehearsal`` with weight 0 adds nothing to the loss, and with weight > 0 it is the source
  head's cross-entropy on a batch of source images.
"""
import pytest
import torch
import torch.nn.functional as F

import ftkit as ft

pytestmark = pytest.mark.usefixtures("one_thread")


class Record:
    def __init__(self):
        self.calls = 0

    def on_fit_end(self, history, model):
        self.calls += 1
        history.info["recorded"] = 0.5 + self.calls


def test_on_fit_end_scores_survive_the_result_cache():
    data = ft.load_dataset("glyphs", "glyph-resnet", chars="0123", per_class=12, lowres=8)
    strategy = ft.Strategy("head", freeze=-1, lr=1e-2)
    record = Record()
    kwargs = {"model": "glyph-resnet", "data": data, "per_class": 2, "seeds": [0], "epochs": 1, "batch_size": 8,
              "progress": False}
    first = ft.compare(strategy, callbacks=[record], **kwargs)
    assert record.calls == 1 and first.runs[0]["history"].info["recorded"] == 1.5
    again = ft.compare(strategy, callbacks=[record], **kwargs)  # from the cache: the callback does not run
    assert record.calls == 1 and again.runs[0]["cached"] and again.runs[0]["history"].info["recorded"] == 1.5


def test_ewc_from_a_fresh_model_is_anchored_at_the_pretrained_body():
    pre = ft.load_model("glyph-resnet")
    source = ft.load_dataset("zoo-source", pre)
    names = [n for n, _ in pre.named_parameters() if not n.startswith("fc.")]
    fisher = ft.diagonal_fisher(pre, ft.few_shot(source.train, per_class=1, seed=0), samples=20, names=names)
    model = ft.load_model("glyph-resnet", num_classes=10)
    ewc = ft.EWC(model, fisher=fisher, lam=1e4)
    assert set(ewc.anchor) == set(names)
    assert all(torch.equal(ewc.anchor[n], p) for n, p in pre.named_parameters() if n in ewc.anchor)
    assert ewc.penalty(model).item() == 0.0
    held = next(n for n in names if fisher[n].sum() > 0)  # a weight the source task depends on
    with torch.no_grad():
        model.get_parameter(held).add_(0.01)
    assert ewc.penalty(model).item() > 0.0


def test_rehearsal_is_the_source_heads_loss_on_a_source_batch():
    pre = ft.load_model("glyph-resnet")
    source = ft.load_dataset("zoo-source", pre)
    replay = ft.few_shot(source.train, per_class=1, seed=0)
    model = ft.load_model("glyph-resnet", num_classes=10).eval()  # eval: the batch leaves BatchNorm as it is
    assert ft.Rehearsal(replay, pre.fc, weight=0.0, batch_size=8).penalty(model).item() == 0.0
    rehearse = ft.Rehearsal(replay, pre.fc, weight=2.0, batch_size=8, seed=0)
    x, y = next(iter(ft.Rehearsal(replay, pre.fc, batch_size=8, seed=0).loader))   # the same first batch
    with torch.no_grad():
        expected = 2.0 * F.cross_entropy(pre.eval()(x), y)  # the body is the pre-trained one: the source model
        got = rehearse.penalty(model)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
