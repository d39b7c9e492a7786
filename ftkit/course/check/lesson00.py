"""Self-checks for lesson 00 (start here)."""
from __future__ import annotations

from functools import lru_cache

from ...models.catalogue import load_model
from ._core import Verdict, check_choice, check_number


@lru_cache(maxsize=1)
def _minilm_millions() -> float:
    model = load_model("minilm-l6", num_classes=5)
    return sum(p.numel() for p in model.parameters()) / 1e6


def q1(answer) -> Verdict:
    """How many parameters (in millions) does MiniLM with its new 5-class head have?"""
    return check_number(answer, _minilm_millions(), abs_tol=0.1,
                        hint="Sum p.numel() over model.parameters() and divide by one million.",
                        why="A small model by today's standards, yet pre-training it took a billion sentence pairs.")


def q2(answer) -> Verdict:
    """How many labelled articles did the fine-tuned model learn from?"""
    return check_number(answer, 40, hint="Count the examples per class times the number of classes, or len(train).",
                        why="8 articles of each of the 5 topics: the pre-trained knowledge did the rest.")


def q3(answer) -> Verdict:
    """Both networks had the same architecture, data and recipe. Why did only one learn?"""
    return check_choice(
        answer, "b",
        {"a": "the pre-trained one trained for more epochs",
         "b": "its weights already encode language, learnt in pre-training on other data",
         "c": "it has more parameters",
         "d": "a lucky seed"},
        hint="Look at what was the same in the two runs: epochs, parameters and seed were. What differed?",
        why="Transfer learning: knowledge from a big pre-training task carries over to a small new one.")


__all__ = ["q1", "q2", "q3"]
