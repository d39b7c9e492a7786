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


@lru_cache(maxsize=None)
def _zero_shot_digits(name: str, size: int) -> float:
    """Zero-shot accuracy of a zoo model's ten digit outputs on the digits' test split, resized to ``size``."""
    import torch

    model = load_model(name, image_size=size)
    test = load_dataset("digits", model, seed=0).test
    outputs = predict(model, test).outputs[:, :10]
    return float((outputs.argmax(1) == torch.tensor(test.targets)).float().mean())


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
    """Predict, then run: glyph-resnet's zero-shot accuracy at 24 pixels, "higher" or "lower" than at 32?"""
    at = {size: _zero_shot_digits("glyph-resnet", size) for size in (24, 32)}
    measured = "higher" if at[24] > at[32] else "lower"
    return check_choice(
        answer, measured, {"higher": "higher than at 32 pixels", "lower": "lower than at 32 pixels"},
        hint="Which size did the network see during pre-training? Look at how accuracy changed between 16, 32 and "
             "64 pixels in section 6, then think about where 24 sits.",
        why=f"Measured: {at[24]:.1%} at 24 pixels, {at[32]:.1%} at 32. Strokes at a scale the filters never saw "
            "read less well, even when the image is only a little smaller.")


def q4(answer) -> Verdict:
    """Design: 300 photos of 6 kinds of leaves, a laptop without a GPU: which model to start from?"""
    return check_choice(
        answer, "b",
        {"a": "glyph-resnet (pre-trained on rendered characters)",
         "b": "ResNet-18 pre-trained on ImageNet",
         "c": "minilm-l6 (a text encoder)",
         "d": "a ResNet-50 with random weights, trained on the photos"},
        hint="Go through section 1's three questions in order: the kind of data, how close the pre-training task "
             "is to yours, and what your hardware can train. Which option passes all three?",
        why="Photos call for a vision model pre-trained on photos; ImageNet is close to leaves, rendered characters "
            "are not; 11.7 million parameters train on a CPU; and with 50 images a class, random weights have "
            "almost nothing to learn from (lesson 02 measures how much a pre-trained start is worth).")


__all__ = ["q1", "q2", "q3", "q4"]
