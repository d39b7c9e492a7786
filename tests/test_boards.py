"""ModelPicker and CompareBoard's learning curves, driven from Python as a lesson does (seconds)."""
import dataclasses

import ipywidgets
import pytest
import torch
from torch import nn

import ftkit as ft
from ftkit.models.cards import ModelCard
from ftkit.widgets.boards import CompareBoard, ModelPicker, model_kind

CARD = ModelCard(name="tiny-boards-cnn", source="zoo", task="image-classification", arch="",
                 input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))


def test_model_picker_loads_shows_groups_and_counts_every_parameter_once(monkeypatch):
    picker = ModelPicker(["glyph-resnet", "glyph-vit", "bbc-gpt"])
    assert picker.model is None and picker.controls["model"].value == "glyph-resnet"  # building loads nothing
    model = picker.run()
    assert isinstance(model, nn.Module) and picker.error is None and "GlyphResNet" in picker.card.value
    assert sum(r["params"] for r in picker.summary.rows) == sum(p.numel() for p in model.parameters())
    assert [r["group"] for r in picker.summary.rows] == ["stem", "block1", "block2", "block3", "head"]
    assert bytes(picker.image.value[:4]) == b"\x89PNG" and "fc: 192 → 82" in picker.table.rows[0]["head"]
    picker.controls["model"].value = "glyph-vit"  # choosing in the dropdown loads at once
    assert picker.model.ftkit_card.name == "glyph-vit" and picker.table.rows[-1]["kind"] == "vision transformer (ViT)"
    picker.run(model="glyph-resnet", head=10)
    assert picker.model.fc.out_features == 10 and "new, random weights" in picker.card.value
    picker.run(head=-1)
    assert picker.model.fc.out_features == 1 and picker.model.ftkit_card.task == "regression"
    gpt = picker.run(model="bbc-gpt", head=0)
    assert model_kind(gpt).startswith("generative") and picker.table.rows[-1]["input"].startswith("text")
    assert sum(r["params"] for r in picker.summary.rows) == sum(p.numel() for p in gpt.parameters())  # tied once
    assert picker.run(head=5) is None and "causal language model" in picker.error  # shown, not raised
    assert len(picker.table.rows) == 5  # one row per (model, head) looked at
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.extend(a))
    picker._ipython_display_()
    assert isinstance(shown[0], ipywidgets.VBox)


def test_model_picker_rejects_unknown_names_and_describes_kinds():
    with pytest.raises(KeyError, match="resnet18"):
        ModelPicker(["resnt18"])
    assert ModelPicker().controls["model"].options == tuple(ft.offline_models())
    cnn = ft.load_model("resnet18", num_classes=2, pretrained=False)
    vit = ft.load_model("vit_b_16", num_classes=2, pretrained=False)
    assert (model_kind(cnn), model_kind(vit)) == ("vision CNN", "vision transformer (ViT)")


def test_compare_board_draws_learning_curves_per_strategy():
    data = ft.load_dataset("digits", CARD)
    data = dataclasses.replace(data, train=data.train.subset(range(96)), val=data.val.subset(range(48)),
                               test=data.test.subset(range(48)))

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                           nn.Flatten()), nn.Linear(16, 10))

    ends = []
    board = CompareBoard(tiny, data, seeds=[0], epochs=2, batch_size=32, cache=False,
                         callbacks=[lambda epoch, history, model: ends.append(epoch)])  # beside the Stop button
    assert board.curves.layout.display == "none"
    board.run(strategies=["linear probe"])
    assert ends == [0, 1]
    first = bytes(board.curves.value)
    assert first[:4] == b"\x89PNG" and board.curves.layout.display is None
    board.run(strategies=["linear probe", "full"])
    assert bytes(board.curves.value) != first and board.curves in board.widget.children
