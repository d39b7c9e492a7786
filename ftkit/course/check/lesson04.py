"""Self-checks for lesson 04 (learning rates and optimizers)."""
from __future__ import annotations

import math

from ...core.schedules import lr_factor, warmup_steps
from ._core import Verdict, check_choice, check_number


def q1(answer) -> Verdict:
    """One-cycle with a peak LR of 1e-3 over 100 steps: what learning rate does the very first step use?"""
    expected = 1e-3 * lr_factor("onecycle", 100, warmup_steps(None, 100, "onecycle"))(0)
    return check_number(answer, expected, rel=0.02,
                        hint="One-cycle warms up: it starts at the peak divided by a fixed factor (see ONECYCLE_DIV "
                             "in ftkit.core.schedules), or compute it with ft.lr_factor('onecycle', 100, 25)(0) * 1e-3.",
                        why="One-cycle starts at the peak divided by 25 (fastai's default). When fine-tuning, "
                            "small first steps let the new, random head settle before large steps reach the "
                            "pre-trained layers.")


def q2(answer) -> Verdict:
    """Why does the LR finder's loss shoot up at the right end of the curve?"""
    return check_choice(
        answer, "b",
        {"a": "the model starts to overfit the training data",
         "b": "the steps are so large that they overshoot, and training diverges",
         "c": "the finder ran out of training data",
         "d": "the schedule's decay kicks in"},
        hint="The learning rate grows at every step of the range test. What does a very large step do to a loss "
             "that was going down?",
        why="Past some learning rate, each step jumps over the valley: the loss explodes. Train well below it.")


def q3(answer) -> Verdict:
    """100 training examples, ``batch_size=16``, 5 epochs: how many optimizer steps does ``fit`` take?"""
    expected = 5 * math.ceil(100 / 16)
    return check_number(answer, expected,
                        hint="An epoch is one pass over the data in batches of 16; the last batch may be smaller "
                             "but is still a step. Multiply by the epochs.",
                        why="Epochs times batches per epoch. A bigger batch means fewer, less noisy steps.")


def q4(answer) -> Verdict:
    """Which optimizer applies weight decay separately from the gradient step (decoupled weight decay)?"""
    return check_choice(
        answer, "adamw",
        {"sgd": "SGD with momentum", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"},
        hint="Look for the optimizer whose name carries the W of weight decay (Loshchilov & Hutter 2019).",
        why="AdamW shrinks the weights directly instead of adding an L2 term to the gradient, which Adam's "
            "per-parameter scaling would weaken.")


__all__ = ["q1", "q2", "q3", "q4"]
