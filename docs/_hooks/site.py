"""MkDocs hook: the pages that come from the repository itself, so nothing is copied by hand.

- every ``lessons/NN_*.ipynb`` (and ``lessons/README.md``, the lessons' index) becomes a page,
  in the nav in order: a new lesson needs no change to ``mkdocs.yml``;
- ``architecture.md`` is README.md's "Architecture" section, read at build time (one source);
- ``api/`` has one page per subpackage of ftkit, in layer order, with each of its modules
  (in the order the subpackage's docstring lists them), rendered by mkdocstrings;
- links between lessons (``[next](07_parameter_efficient.ipynb)``) point at the lessons' pages;
  a relative link to something that is not a page of the site is a warning (an error with --strict);
- a lesson's page offers its notebook for download; nbconvert's script that would fetch
  mermaid.js from a CDN is left out of the lessons' pages.
(``docs/_hooks/griffe_examples.py`` renders the docstrings' "Example:" sections as examples, where
griffe leaves out doctest flags such as ``# doctest: +SKIP``.)
"""
from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
# The subpackages, bottom layer first (README.md, "Architecture").
PACKAGES = ("core", "models", "data", "tuning", "train", "experiments", "viz", "widgets", "course")
NAV_LESSONS, NAV_API = "LESSONS", "API"

log = logging.getLogger("mkdocs.hooks.site")


def lessons() -> list[str]:
    """``lessons/NN_topic.ipynb`` paths, relative to the repository, in lesson order."""
    return [f"lessons/{p.name}" for p in sorted((ROOT / "lessons").glob(LESSON_GLOB))]


def modules(package: str) -> list[str]:
    """The public modules of ``ftkit.<package>``: first as its docstring lists them, then the rest."""
    folder = ROOT / "ftkit" / package
    found = {p.stem for p in folder.glob("*.py") if not p.name.startswith("_")}
    found |= {p.parent.name for p in folder.glob("*/__init__.py") if not p.parent.name.startswith("_")}
    listed = re.findall(r"^- ``(\w+)``", (folder / "__init__.py").read_text(encoding="utf-8"), re.MULTILINE)
    ordered = [m for m in dict.fromkeys(listed) if m in found]
    return ordered + sorted(found - set(ordered))


def api_page(package: str) -> str:
    options = "    options:\n      show_root_heading: false\n      members: false\n"  # the package's docstring only
    parts = [f"# `ftkit.{package}`\n", f"::: ftkit.{package}\n{options}"]
    for name in modules(package):
        parts.append(f"::: ftkit.{package}.{name}\n")
    return "\n".join(parts)


def api_index() -> str:
    rows = "\n".join(f"| [`ftkit.{p}`]({p}.md) | {_summary(p)} |" for p in reversed(PACKAGES))
    return ("# API reference\n\n`import ftkit as ft` is the front door: every public name is also `ft.<name>` "
            "(`ft.fit`, `ft.freeze`, ...). The pages below follow the package: one per subpackage, top layer "
            "first; each may import only the ones below it (see [Architecture](../architecture.md)).\n\n"
            "| subpackage | what it holds |\n|---|---|\n" + rows + "\n")


def _summary(package: str) -> str:
    text = (ROOT / "ftkit" / package / "__init__.py").read_text(encoding="utf-8")
    doc = re.search(r'"""(.*?)(\n\n|""")', text, re.DOTALL)
    return " ".join(doc.group(1).split()) if doc else ""


def architecture() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## Architecture\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    if not found:
        raise ValueError("README.md has no '## Architecture' section, which docs/architecture comes from.")
    return "# Architecture\n\n<!-- Generated from README.md's Architecture section: edit it there. -->\n" + found.group(1)


def on_config(config):
    nav = []
    for entry in config["nav"]:
        (title, value), = entry.items() if isinstance(entry, dict) else ((None, entry),)
        if value == NAV_LESSONS:
            value = [{"Overview": "lessons/README.md"}, *lessons()]
        elif value == NAV_API:
            value = [{"Overview": "api/index.md"}, *({f"ftkit.{p}": f"api/{p}.md"} for p in PACKAGES)]
        nav.append({title: value} if title else value)
    config["nav"] = nav
    return config


@event_priority(100)  # before mkdocs-jupyter, which turns the notebooks among the files into pages
def on_files(files: Files, config) -> Files:
    for path in [*lessons(), "lessons/README.md"]:
        files.append(File(path, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    files.append(File.generated(config, "architecture.md", content=architecture()))
    files.append(File.generated(config, "api/index.md", content=api_index()))
    for package in PACKAGES:
        files.append(File.generated(config, f"api/{package}.md", content=api_page(package)))
    return files


_MERMAID = re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{'
                      r'\s*const diagrams = document\.querySelectorAll\("\.jp-Mermaid.*?</script>', re.DOTALL)
_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|#|/)([^"#?]+)(#[^"]*)?"', re.IGNORECASE)


def on_page_content(html: str, page, config, files: Files) -> str:
    if page.file.src_uri.endswith(".ipynb"):  # mkdocs-jupyter's HTML: MkDocs does not check its links
        def to_page(match: re.Match) -> str:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), match.group(1)))
            found = files.get_file_from_path(target)
            if found is None:
                log.warning("%s links to '%s', which is not a page of the site.", page.file.src_uri, match.group(1))
                return match.group(0)
            return f'href="{found.url_relative_to(page.file)}{match.group(2) or ""}"'
        html = _LINK.sub(to_page, html)
        # nbconvert's loader of mermaid.js from a CDN (for mermaid diagrams, which the lessons have none of):
        # the site loads nothing from elsewhere.
        html = _MERMAID.sub("", html)
        name = posixpath.basename(page.file.src_uri)  # mkdocs-jupyter's include_source puts it beside the page
        html = f'<p><small><a href="{name}" download>Download this notebook</a></small></p>\n' + html
    return html
