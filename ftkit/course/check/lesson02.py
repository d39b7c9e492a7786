"""Self-checks for lesson 02 (transfer strategies: scratch, linear probe, partial, full; data efficiency)."""
from __future__ import annotations

from functools import lru_cache

from ...models.catalogue import load_model
from ...tuning.freeze import freeze_to
from ._core import Verdict, check_choice, check_number


@lru_cache(maxsize=1)
def _partial2_trainable() -> int:
    model = freeze_to(load_model("glyph-resnet", num_classes=10), -2)  # what ft.strategies.partial(2) trains
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def q1(answer) -> Verdict:
    """How many parameters train in partial-2 (glyph-resnet with a 10-class head)?"""
    return check_number(answer, _partial2_trainable(),
                        hint="partial(2) trains the last two layer groups, the head included. Try "
                             "ft.freeze_to(model, -2) on a fresh glyph-resnet with 10 classes, then ft.trainable_summary(model).",
                        why="Most of glyph-resnet's parameters sit in its last block: 'partial' is not 'small' here. "
                            "It is cheaper per step than full fine-tuning because backpropagation stops at block3.")


def q2(answer) -> Verdict:
    """Which strategy is feature extraction: transfer learning that changes no pre-trained weight?"""
    return check_choice(
        answer, "b",
        {"a": "scratch", "b": "linear probe", "c": "partial-2", "d": "full"},
        hint="Which strategy's trainable parameters are only those of the new head?",
        why="The pre-trained backbone only extracts features; a new linear head learns to read them.")


def q3(answer) -> Verdict:
    """Why is the linear probe the fastest per epoch?"""
    return check_choice(
        answer, "c",
        {"a": "it uses a smaller learning rate",
         "b": "it trains for fewer epochs",
         "c": "the frozen backbone's features are computed once and reused; each epoch trains one linear layer on them",
         "d": "it skips the validation split"},
        hint="Look at the 'path' column of the comparison table.",
        why="A frozen backbone is a fixed function, so fit caches its outputs (the 'feature-cache' path); "
            "an epoch then costs a few small matrix products.")


__all__ = ["q1", "q2", "q3"]
