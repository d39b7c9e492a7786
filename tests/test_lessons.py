"""The lessons' form: stripped outputs, badges, the Colab/Binder first cell, self-checks, the index.

Running them is nbval's job (``python -m pytest`` collects ``lessons/*.ipynb``); these checks
keep every notebook in the shape the course promises.
"""
import ast
import re
from pathlib import Path

import nbformat
import pytest

import ftkit as ft

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
REPO = "ftkit/ftkit"


def _read(path):
    return nbformat.read(path, as_version=4)


def test_there_are_lessons():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_is_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs (cell {cell.id})"
        assert "attachments" not in cell or not cell.attachments, f"{path.name}: attachments make notebooks heavy"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state; clear it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_opens_with_badges_and_a_colab_binder_first_cell(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert f"mybinder.org/v2/gh/{REPO}/main?labpath=lessons%2F{path.name}" in first.source
    assert f"colab.research.google.com/github/{REPO}/blob/main/lessons/{path.name}" in first.source
    assert re.search(r"^# \d\d ·", first.source, re.M), "a title like '# 03 · Freezing'"
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert '"google.colab" in sys.modules' in setup.source and f"git+https://github.com/{REPO}" in setup.source
    assert "torch" not in setup.source.split("pip")[1].split("\n")[0], "never reinstall torch on Colab"
    assert f'ft.start_lesson("{path.name[:2]}")' in setup.source  # seeds, prints the device


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_code_is_plain_python_with_claims_and_self_checks(path):
    nb = _read(path)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    for source in code:
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("!", "%"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert all(a.name != "*" for a in node.names), f"{path.name}: no import *"
    text = "\n".join(code)
    assert re.search(r"^assert ", text, re.M), f"{path.name}: assert the lesson's claim in a cell"
    lesson = f"lesson{path.name[:2]}"
    asked = set(re.findall(rf"ft\.check\.{lesson}\.(\w+)\(", text))
    assert asked, f"{path.name}: exercises with ft.check.{lesson}.qN(answer)"
    module = getattr(ft.check, lesson)
    assert asked <= set(module.__all__), f"{path.name} asks {asked - set(module.__all__)} that ft.check lacks"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Summary" in markdown and "## Exercises" in markdown


def test_lessons_index_lists_every_lesson_with_its_time():
    index = (LESSONS / "README.md").read_text()
    for path in NOTEBOOKS:
        row = next((line for line in index.splitlines() if f"[{path.stem}]({path.name})" in line), None)
        assert row, f"lessons/README.md: link {path.name}"
        assert re.search(r"\| (about )?\d+ (s|min) \|$", row.strip()), f"lessons/README.md: measured time for {path.stem}"


@pytest.mark.parametrize("module", sorted(n for n in dir(ft.check) if n.startswith("lesson")))
def test_checks_answer_no_answer_with_a_hint(module):
    for name in getattr(ft.check, module).__all__:
        verdict = getattr(getattr(ft.check, module), name)(None)
        assert isinstance(verdict, ft.check.Verdict) and not verdict and "answer" in verdict.message
