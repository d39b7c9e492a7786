"""The documentation: the site builds with warnings as errors, and the docstrings' examples run.

- ``test_site_*``: ``mkdocs build --strict`` (mkdocs.yml, docs/) into a temporary folder, once, then
  checks its pages: every lesson (with its badges, linked to the next one), the how-to guides, the
  architecture page (README's section), the API pages of every subpackage, and nothing loaded from
  elsewhere. Skipped where the docs' packages are not installed (``pip install -e ".[docs]"``).
- ``test_docstring_examples``: every module's docstring examples (``>>> ft.fit(...)``, with
  ``ft`` being ``import ftkit as ft``) run as doctests, except those marked ``# doctest: +SKIP``
  (examples that need your data or a model in hand, a network, or train for more than a few seconds).
"""
from __future__ import annotations

import doctest
import html
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.stem for p in (ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
PACKAGES = ("core", "models", "data", "tuning", "train", "experiments", "viz", "widgets", "course")
HOW_TO = ("own-data", "lora", "gradual-unfreezing", "resume", "gpus")
DOC_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [name for name in DOC_PACKAGES if _missing(name)]
    if missing:
        pytest.skip(f"the documentation's packages are not installed ({', '.join(missing)}): "
                    'pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    problems = [line for line in done.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    if done.returncode:
        pytest.fail("mkdocs build --strict failed:\n" + "\n".join(problems or done.stderr.splitlines()[-40:]))
    return out


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # its parent package is missing
        return True


def _page(site: Path, path: str) -> str:
    file = site / path / "index.html"
    assert file.is_file(), f"the site has no page {path}/"
    return file.read_text(encoding="utf-8")


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_site_has_every_lesson_with_its_badges_and_working_links(site):
    assert LESSONS, "no lessons/NN_*.ipynb found"
    nav = _page(site, ".")
    for stem in LESSONS:
        page = _page(site, f"lessons/{stem}")
        assert f'href="lessons/{stem}/"' in nav, f"lesson {stem} is not in the site's navigation"
        assert "mybinder.org/badge_logo.svg" in page and f"colab.research.google.com/github/ftkit/ftkit/blob/main/" \
            f"lessons/{stem}.ipynb" in page, f"lesson {stem}'s page lacks its Binder and Colab badges"
        assert (site / "lessons" / stem / f"{stem}.ipynb").is_file() and f'href="{stem}.ipynb" download' in page, \
            f"lesson {stem}'s notebook is not offered for download"
        # Links between lessons point at pages of the site (the hook rewrites "07_x.ipynb" to "../07_x/").
        for target in re.findall(r'href="\.\./(\d\d_\w+)/"', page):
            assert target in LESSONS, f"lesson {stem} links to {target}, which is not a lesson"
        assert not re.search(r'href="\d\d_\w+\.ipynb"(?! download)', page), f"lesson {stem} links to a notebook file"
    index = _page(site, "lessons")
    for stem in LESSONS[:6]:  # the index's table links the lessons that are ready to their pages
        assert f'href="{stem}/"' in index


def test_site_getting_started_has_the_readme_commands(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = re.search(r"^python3 -m venv .*$", readme, re.MULTILINE).group(0)
    text = _text(_page(site, "getting-started"))
    for command in (setup, "python -m pytest", "ftkit doctor"):
        assert command in text, f"docs/getting-started.md lacks README's command: {command}"


def test_site_how_to_and_architecture_pages(site):
    for name in HOW_TO:
        _page(site, f"how-to/{name}")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Architecture\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL).group(1)
    text = _text(_page(site, "architecture"))
    for line in re.findall(r"^  (\w+) {2,}(.+)$", section, re.MULTILINE):  # the layer diagram, line by line
        assert line[0] in text and line[1].strip() in text, f"the architecture page lacks README's line {line}"


def test_site_api_pages_cover_every_module(site):
    for package in PACKAGES:
        page = _page(site, f"api/{package}")
        folder = ROOT / "ftkit" / package
        names = [p.stem for p in folder.glob("*.py") if not p.name.startswith("_")]
        names += [p.parent.name for p in folder.glob("*/__init__.py")]
        for name in names:
            assert f'id="ftkit.{package}.{name}"' in page, f"the API page of ftkit.{package} lacks {name}"
    train = _page(site, "api/train")
    assert 'id="ftkit.train.loop.fit"' in train and "checkpoint_dir" in train, "the API page lacks ft.fit"
    for package in PACKAGES:
        assert "doctest:" not in _text(_page(site, f"api/{package}")), f"doctest flags are shown on api/{package}"


def test_site_loads_nothing_from_elsewhere(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        external = re.findall(r'<script[^>]+src="(?:https?:)?//[^"]+"|<link[^>]+href="(?:https?:)?//[^"]+\.css[^"]*"'
                              r'|import\(\s*"https?://[^"]+"|fonts\.googleapis', text)
        assert not external, f"{page.relative_to(site)} loads {external[:3]}"


# --- the docstrings' examples, as doctests ------------------------------------------------------------------

MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "ftkit").rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    """The module's examples run (``ft`` is ``import ftkit as ft``), in a temporary folder; +SKIP ones do not."""
    import ftkit as ft

    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name, extraglobs={"ft": ft}) if t.examples]
    runnable = [t for t in tests if any(not e.options.get(doctest.SKIP) for e in t.examples)]
    if not runnable:
        pytest.skip(f"{name}: {sum(len(t.examples) for t in tests)} examples, all marked +SKIP" if tests
                    else f"{name}: no examples")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in runnable:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)


def test_docs_pages_name_only_functions_that_exist():
    """Every ``ft.<name>`` (and ``ft.strategies.<name>``) the hand-written pages use is a real name of ftkit."""
    import ftkit as ft

    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for name in sorted(set(re.findall(r"\bft\.(\w+(?:\.\w+)?)", text))):
            obj, parts = ft, name.split(".")
            if parts[0] not in ("strategies", "zoo", "check"):  # a method or attribute of what a call returns
                parts = parts[:1]
            for part in parts:
                assert hasattr(obj, part), f"{page.relative_to(ROOT)} uses ft.{name}, which ftkit does not have"
                obj = getattr(obj, part)
