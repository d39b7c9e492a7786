"""Self-checks for the lessons' exercises: ``ft.check.lesson03.q1(answer)``.

Each check tells a learner whether an answer is right, with a hint when it is not; the
expected answers are computed here (or fixed by the question) and never printed. A check
returns a ``Verdict``: truthy when right, shown as a coloured box in a notebook.

Example:
    >>> ft.check.lesson00.q1(22.7)
    Right! ...
"""
from . import (
    lesson00,
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson06,
    lesson07,
    lesson08,
    lesson09,
    lesson10,
    lesson11,
)
from ._core import Verdict

__all__ = ["Verdict", "lesson00", "lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06", "lesson07",
           "lesson08", "lesson09", "lesson10", "lesson11"]
