"""Small example data shipped with ftkit, laid out as your own data would be (see README.md here).

``handwritten/``: 160 PNG images of handwritten digits in four class folders (``three``, ``five``,
``eight``, ``nine``), 40 each, at 40, 48 or 64 pixels square: made from scikit-learn's copy of
the UCI handwritten digits (CC BY 4.0). ``messages.csv``: 90 customer messages written for
ftkit, with the team that should answer each (``billing``, ``delivery``, ``technical``).

Example:
    >>> data = ft.from_folder(ft.example_data("handwritten"), "glyph-resnet")
    >>> texts = ft.from_csv(ft.example_data("messages"), text="message", label="team", model="minilm-l6")
"""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
EXAMPLES = {"handwritten": "handwritten", "messages": "messages.csv"}  # name -> path inside this folder


def example_data(name: str) -> Path:
    """The path of a shipped example: ``"handwritten"`` (an image folder) or ``"messages"`` (a CSV of texts).

    Example:
        >>> ft.example_data("handwritten")            # .../ftkit/data/examples/handwritten  # doctest: +SKIP
        >>> ft.example_data("messages").suffix
        '.csv'
    """
    if name not in EXAMPLES:
        raise ValueError(f"No example data named {name!r}. The examples: {', '.join(map(repr, EXAMPLES))}.")
    path = _HERE / EXAMPLES[name]
    if not path.exists():
        raise FileNotFoundError(f"The example {name!r} is missing from this installation ({path}); "
                                "reinstall ftkit, or install it from its repository.")
    return path


__all__ = ["EXAMPLES", "example_data"]
