"""The verdict a self-check returns, and helpers to compare a learner's answer with the expected one."""
from __future__ import annotations

import html
import math
from typing import Any

from ...experiments.strategies import Strategy

_MISSING_HINT = "Replace the ... (or None) with your answer and run the cell again."


class Verdict:
    """What a check says: right or not, and a hint when not. Truthy when right.

    Shows itself in a notebook (green or orange box) and prints as one line elsewhere.
    The expected answer is never shown: the hint points the way instead.
    """

    def __init__(self, ok: bool, message: str):
        self.ok, self.message = bool(ok), message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("Right! " if self.ok else "Not yet. ") + self.message

    def _repr_html_(self) -> str:
        colour, mark = ("#0b7a3e", "&#10003; Right!") if self.ok else ("#b35900", "&#10007; Not yet.")
        return (f'<div style="border-left:4px solid {colour};padding:4px 10px;margin:4px 0">'
                f'<b style="color:{colour}">{mark}</b> {html.escape(self.message)}</div>')


def right(why: str = "") -> Verdict:
    return Verdict(True, why)


def wrong(hint: str) -> Verdict:
    return Verdict(False, hint)


def missing(answer: Any) -> bool:
    """Has the learner not answered yet (``None`` or ``...``)?"""
    return answer is None or answer is Ellipsis


def one_of(answer: Any, words: tuple[str, ...]) -> str | Verdict:
    """A one-word prediction (``"yes"`` / ``"no"``, ``"rise"`` / ``"fall"``): the word, lower-cased,
    or a Verdict saying what to answer when it is missing or not one of ``words``."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    said = str(answer).strip().lower()
    return said if said in words else wrong(f"Answer {' or '.join(map(repr, words))} (got {answer!r}).")


def as_number(answer: Any) -> float | None:
    """The answer as a float, or None when it is not a number (a string like "12" counts)."""
    if isinstance(answer, bool):
        return None
    try:
        value = float(answer.item() if hasattr(answer, "item") else answer)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def not_a_recipe(answer: Any, example: str) -> Verdict | None:
    """The verdict for a design question's answer that is not a recipe (an ``ft.Strategy``) yet; None if it is one.

    ``example`` shows the learner what such an answer looks like, e.g. ``"ft.strategies.full(lr=...)"``.
    """
    if missing(answer):
        return wrong(_MISSING_HINT)
    if not isinstance(answer, Strategy):
        return wrong(f"Answer with a recipe, a strategy object (ft.Strategy): e.g. {example} "
                     f"(got {type(answer).__name__}).")
    return None


def check_number(answer: Any, expected: float, *, rel: float = 0.0, abs_tol: float = 0.0,
                 hint: str, why: str = "") -> Verdict:
    """Right when ``answer`` is within ``rel`` (relative) or ``abs_tol`` of ``expected``."""
    if missing(answer):
        return wrong(_MISSING_HINT)
    value = as_number(answer)
    if value is None:
        return wrong(f"Answer with a number (got {type(answer).__name__} {answer!r}). {hint}")
    if math.isclose(value, expected, rel_tol=rel, abs_tol=abs_tol):
        return right(why)
    return wrong(hint)


def check_choice(answer: Any, expected: str | set[str], options: dict[str, str], *, hint: str,
                 why: str = "") -> Verdict:
    """A multiple-choice question: ``options`` maps each letter (or word) to its text.

    ``expected`` is the right key, or a set of keys when several are right (then the answer
    is a string or list of keys, in any order).
    """
    if missing(answer):
        return wrong(_MISSING_HINT)
    keys = {str(a).strip().lower() for a in (answer if isinstance(answer, (list, tuple, set)) else
                                             str(answer).replace(",", " ").split())}
    known = {k.lower() for k in options}
    unknown = keys - known
    if unknown or not keys:
        return wrong(f"Answer with {' / '.join(repr(k) for k in options)} (got {answer!r}).")
    want = {expected.lower()} if isinstance(expected, str) else {e.lower() for e in expected}
    return right(why) if keys == want else wrong(hint)
