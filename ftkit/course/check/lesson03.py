"""Self-checks for lesson 03 (freezing and unfreezing)."""
from __future__ import annotations

from functools import lru_cache

from ...models.catalogue import load_model
from ...models.groups import layer_groups
from ...train.optim import group_lrs
from ._core import Verdict, check_choice, check_number


@lru_cache(maxsize=1)
def _glyph_resnet_groups() -> tuple[tuple[str, int], ...]:
    """(name, parameters) of each layer group of glyph-resnet with a 10-class head, input to output."""
    return tuple((g.name, g.numel) for g in layer_groups(load_model("glyph-resnet", num_classes=10)))


def q1(answer) -> Verdict:
    """How many parameters of glyph-resnet (10-class head) train after ``ft.freeze_to(model, 3)``?"""
    expected = sum(n for _, n in _glyph_resnet_groups()[3:])  # freeze_to(model, 3): groups 3, 4, ... train
    return check_number(answer, expected, abs_tol=0.5,
                        hint="freeze_to(model, 3) freezes the first 3 layer groups. Count the parameters with "
                             "requires_grad=True afterwards, or read the footer of ft.trainable_summary(model).",
                        why="The last block and the head: most of this small ResNet's parameters sit in its last "
                            "block, as in big CNNs.")


def q2(answer) -> Verdict:
    """A BatchNorm layer frozen with ``bn="train"``: what changes while the model trains?"""
    return check_choice(
        answer, "b",
        {"a": "its weight and bias (the affine parameters)",
         "b": "its running mean and variance (buffers, not parameters)",
         "c": "both",
         "d": "nothing"},
        hint="requires_grad=False stops the optimizer from changing parameters. Which numbers of a BatchNorm "
             "layer are not parameters, and are updated by the forward pass itself in train mode?",
        why="Its statistics adapt to the new data while its weights stay put; bn='frozen' keeps both fixed.")


def q3(answer) -> Verdict:
    """Gradual unfreezing of glyph-resnet with ``unfreeze_every=2``: in which epoch (from 1) does every group train?"""
    n = len(_glyph_resnet_groups())
    # fit trains the top 1 + e // k groups in epoch e (0-based): all n groups from e = (n - 1) * k.
    expected = (n - 1) * 2 + 1
    return check_number(answer, expected,
                        hint="The head trains alone first; one more group joins every 2 epochs. Count the layer "
                             "groups (ft.layer_groups(model)), or train with unfreeze_every=2 and read "
                             "history.metric('trainable').",
                        why="With k epochs per step, a model with n groups trains fully from epoch (n - 1) * k + 1.")


def q4(answer) -> Verdict:
    """With ``lr=slice(1e-5, 1e-3)`` on glyph-resnet, what learning rate does the group ``block2`` get?"""
    names = [name for name, _ in _glyph_resnet_groups()]
    expected = group_lrs(slice(1e-5, 1e-3), len(names))[names.index("block2")]
    return check_number(answer, expected, rel=0.02,
                        hint="The rates rise geometrically (the same factor each group) from the first group's "
                             "1e-5 to the head's 1e-3. ft.group_lrs(slice(1e-5, 1e-3), n_groups) lists them.",
                        why="Discriminative learning rates: the middle of the network moves at a rate between "
                            "the general early layers and the new head.")


__all__ = ["q1", "q2", "q3", "q4"]
