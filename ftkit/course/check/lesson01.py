"""Self-checks for lesson 01 (pre-trained models: choose, load, inspect, change the head)."""
from __future__ import annotations

from functools import lru_cache

from ...data.catalogue import load_dataset
from ...models.catalogue import load_model
from ...models.groups import layer_groups
from ...train.evaluate import predict
from ._core import _MISSING_HINT, Verdict, as_number, check_choice, check_number, missing, right, wrong


@lru_cache(maxsize=1)
def _head_params() -> int:
    return layer_groups(load_model("glyph-resnet", num_classes=10))[-1].numel


@lru_cache(maxsize=1)
def _zero_shot_all_outputs() -> float:
    import torch

    model = load_model("glyph-resnet")
    test = load_dataset("digits", model, seed=0).test
    outputs = predict(model, test).outputs
    return float((outputs.argmax(1) == torch.tensor(test.targets)).float().mean())


def q1(answer) -> Verdict:
    """How many parameters does the new 10-class head of glyph-resnet have?"""
    return check_number(answer, _head_params(),
                        hint="The head is one nn.Linear: in_features x out_features weights, plus one bias per "
                             "output. ft.layer_groups(model)[-1].numel counts it for you.",
                        why="A tiny layer next to the backbone: this is all that starts from random weights.")


def q2(answer) -> Verdict:
    """Zero-shot accuracy on the test split when the arg-max runs over all 82 outputs (letters and symbols too)."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    value = as_number(answer)
    if value is None:
        return wrong(f"Answer with a number (got {type(answer).__name__} {answer!r}).")
    expected = _zero_shot_all_outputs()
    if abs(value - expected) <= 0.01 or abs(value - 100 * expected) <= 1.0:  # a fraction or a percentage
        return right("Lower than with the ten digit outputs: a handwritten 0 can now be read as the letter 'O', "
                     "a 5 as 'S'. Choosing which outputs to trust is part of reusing a head.")
    return wrong("Take pred.outputs.argmax(1) over all 82 columns (no [:, :10]) and compare it with the "
                 "true digits of data.test, as in section 3.")


def q3(answer) -> Verdict:
    """Why does glyph-vit fail on a 64 x 64 image while glyph-resnet runs?"""
    return check_choice(
        answer, "b",
        {"a": "the ViT has more parameters than the ResNet",
         "b": "the ViT learnt one position embedding per patch of its 8 x 8 grid; a 64 x 64 image has 16 x 16 patches",
         "c": "the ViT was pre-trained on fewer images",
         "d": "the ResNet was pre-trained on 64 x 64 images"},
        hint="Compare the error message with model.pos_embed.shape. What does the CNN have instead, just before fc?",
        why="The CNN's global average pooling turns any feature map into one vector; the ViT's position "
            "embeddings are tied to a grid size, so ftkit resamples them when you ask for image_size.")


def q4(answer) -> Verdict:
    """After ft.load_model("glyph-resnet", num_classes=10), which weights are random?"""
    return check_choice(
        answer, "b",
        {"a": "all of them",
         "b": "only the new head (fc)",
         "c": "the stem and the head",
         "d": "none: the head is pre-trained too"},
        hint="Look at the cell that compared the backbone tensors with the pre-trained model's.",
        why="The backbone keeps every pre-trained weight (and BatchNorm statistic); only the new output layer "
            "is drawn at random, which is why it must be trained before it reads anything.")


__all__ = ["q1", "q2", "q3", "q4"]
