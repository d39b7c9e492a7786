"""What lesson 09 relies on from the library.

Section 4 keeps every run's answers with a ``fit`` callback passed to ``ft.compare`` and lines them up
with ``result.runs``; it uses ``refresh=True`` so that the runs train (and the callback sees them) on
every run of the lesson, and section 7's panel then reads them from the cache. Section 3 says that
``ft.evaluate``'s per-class numbers are those computed by hand from the confusion matrix.
"""
from types import SimpleNamespace

import pytest
import torch
from helpers import blobs
from torch import nn

import ftkit as ft

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def splits():
    return SimpleNamespace(train=blobs(96, seed=0), val=blobs(48, seed=1), test=blobs(48, seed=2), num_classes=3,
                           name="blobs")


class KeepAnswers:
    def __init__(self, split):
        self.split, self.answers = split, []

    def on_fit_end(self, history, model):
        self.answers.append(ft.predict(model, self.split).labels)


def test_a_fit_end_callback_sees_each_run_in_order_with_the_model_compare_scores():
    data = splits()
    keep = KeepAnswers(data.test)
    grid = ft.sweep(ft.Strategy("tiny", lr=1e-2, epochs=3), lr=[1e-3, 1e-2])
    result = ft.compare(grid, model=tiny, data=data, seeds=[0, 1], callbacks=[keep], model_key="tiny-blobs",
                        refresh=True, progress=False, batch_size=16)
    assert len(keep.answers) == len(result.runs) == 4
    truth = data.test.tensors[1]
    for run, answers in zip(result.runs, keep.answers):
        assert abs((answers == truth).double().mean().item() - run["accuracy"]) < 1e-9, run["strategy"]

    # refresh=True stored the runs: the same comparison now reads them from the cache, without training.
    again = KeepAnswers(data.test)
    cached = ft.compare(grid, model=tiny, data=data, seeds=[0, 1], callbacks=[again], model_key="tiny-blobs",
                        progress=False, batch_size=16)
    assert all(run["cached"] for run in cached.runs) and again.answers == []
    assert [r["accuracy"] for r in cached.runs] == [r["accuracy"] for r in result.runs]


def test_evaluate_per_class_report_is_the_confusion_matrix_read_by_hand():
    data = splits()
    model = tiny()
    ft.fit(model, data.train, data.val, epochs=2, lr=1e-2, batch_size=16, progress=False, live=False)
    report = ft.evaluate(model, data.test)
    truth, predicted = data.test.tensors[1], ft.predict(model, data.test).labels
    confusion = torch.bincount(truth * 3 + predicted, minlength=9).reshape(3, 3)
    assert report["confusion"] == confusion.tolist()
    hits = confusion.diag().double()
    precision = hits / confusion.sum(0).clamp(min=1)
    recall = hits / confusion.sum(1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    for name, mine in (("precision", precision), ("recall", recall), ("f1", f1)):
        assert torch.allclose(torch.tensor([r[name] for r in report["per_class"]], dtype=torch.float64), mine), name
    assert abs(report["f1"] - float(f1.mean())) < 1e-12
    assert abs(report["accuracy"] - float(hits.sum() / confusion.sum())) < 1e-12
