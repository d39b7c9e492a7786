"""Griffe extension: how ftkit's docstring examples are shown on the API pages (the source is unchanged).

- ftkit titles its examples "Example:"; griffe reads only Google's "Examples:" as the examples
  section (``>>>`` lines shown as Python code), and any other "Title:" as an admonition whose
  ``>>>`` lines Markdown would show as nested quotes. So "Example:" is read as "Examples:".
- Doctest flags (``# doctest: +SKIP``) are for the tests, not the reader: they are left out,
  also in examples outside an examples section.
"""
from __future__ import annotations

import re

import griffe

_TITLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_FLAGS = re.compile(r"^(\s*(?:>>>|\.\.\.) .*?)\s*#\s*doctest:[^\n]*$", re.MULTILINE)


class ExamplesSection(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _FLAGS.sub(r"\1", _TITLE.sub(r"\1Examples:", obj.docstring.value))
