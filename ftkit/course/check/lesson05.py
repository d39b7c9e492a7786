"""Self-checks for lesson 05 (regularisation)."""
from __future__ import annotations

from functools import lru_cache

from ...models.catalogue import load_model
from ...train.optim import make_optimizer, param_groups
from ._core import Verdict, check_choice, check_number


def q1(answer) -> Verdict:
    """Reading learning curves: which run overfits?"""
    return check_choice(
        answer, "b",
        {"a": "train loss and validation loss both stay high and close together",
         "b": "train loss falls towards 0 while validation loss stops falling, then rises",
         "c": "train loss and validation loss fall together and end close to each other",
         "d": "validation loss is lower than train loss all along"},
        hint="Overfitting means learning the training examples themselves, not what carries over to new ones. "
             "Which curves show the model getting better on its own examples only?",
        why="The widening distance between the two curves is the generalisation gap; (a) is underfitting.")


@lru_cache(maxsize=1)
def _undecayed_params() -> int:
    model = load_model("glyph-resnet", num_classes=10)
    return sum(p.numel() for g in param_groups(model, lr=1e-3, weight_decay=0.1) if g["weight_decay"] == 0
               for p in g["params"])


def q2(answer) -> Verdict:
    """How many of glyph-resnet's parameters (10-class head) does fit leave without weight decay?"""
    return check_number(answer, _undecayed_params(),
                        hint="Weight decay skips the 1-D parameters: biases and BatchNorm scales and shifts. "
                             "Count them with sum(p.numel() for p in model.parameters() if p.ndim == 1), or add "
                             "the '1-D (no decay)' rows of ft.optimizer_summary(ft.make_optimizer(model)).",
                        why="Under 1% of the network: decaying them buys no regularisation, and pulling a "
                            "BatchNorm scale to 0 would switch its channel off.")


@lru_cache(maxsize=4)
def _kept_after_decay(lr: float, weight_decay: float, steps: int) -> float:
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False))
    torch.nn.init.ones_(model[0].weight)
    optimizer = make_optimizer(model, "adamw", lr=lr, weight_decay=weight_decay)
    for _ in range(steps):  # a zero gradient: only the decoupled decay moves the weight
        model[0].weight.grad = torch.zeros_like(model[0].weight)
        optimizer.step()
    return float(model[0].weight.detach())


def q3(answer) -> Verdict:
    """AdamW, lr 1e-3, weight_decay 0.1, 100 steps, zero gradient: what fraction of a weight is left?"""
    return check_number(answer, _kept_after_decay(1e-3, 0.1, 100), rel=1e-4,
                        hint="Decoupled weight decay multiplies each weight by (1 - lr * weight_decay) at every "
                             "step, whatever the gradient. Do that 100 times.",
                        why="About 99% is left: at this learning rate and decay, 100 steps move the weights "
                            "little. The lesson's own recipe (weight_decay=1, lr 3e-3) keeps about 74%: the "
                            "pull grows with lr * weight_decay and with the number of steps.")


def q4(answer) -> Verdict:
    """Which regulariser uses the validation data while training?"""
    return check_choice(
        answer, "e",
        {"a": "dropout", "b": "weight decay", "c": "L2-SP", "d": "data augmentation", "e": "early stopping"},
        hint="Which one needs a score on examples outside the training set to decide what to do?",
        why="Early stopping picks the epoch with the best validation loss, so the validation score is no longer "
            "an unbiased estimate: that is why the gaps were measured on the test split.")


__all__ = ["q1", "q2", "q3", "q4"]
