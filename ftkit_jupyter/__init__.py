"""The Jupyter side of ftkit: where the lessons are, and the launcher cards that open them.

This is a separate top-level package, not ``ftkit.something``, because importing ``ftkit``
imports PyTorch (seconds, and hundreds of MB): the Jupyter server loads this module as a
server extension at start-up and must stay light. It uses the standard library only.

- ``lessons_source()``: the folder holding the original lessons: ``ftkit/lessons/`` inside
  an installed wheel, or the repository's ``lessons/`` in a source checkout or an
  editable install. Lessons are the notebooks named ``NN_topic.ipynb``, found at run time.
- ``write_launcher_config(folder)``: a ``jupyter-app-launcher`` configuration with one
  card per lesson in the launcher section "Fine-tuning lessons". A card is of the
  ``notebook`` type: clicking it writes a fresh copy of the original lesson into the
  file browser's current folder (``03_freezing_and_unfreezing-1.ipynb`` when a copy
  already exists; nothing is overwritten) and opens it. No Node.js is involved: the
  launcher extension is prebuilt and reads the cards from YAML at run time.
- The server extension (enabled by ``etc/jupyter/jupyter_server_config.d/ftkit_jupyter.json``,
  which a wheel installs) writes that configuration to a temporary folder when a Jupyter
  server starts and points ``JUPYTER_APP_LAUNCHER_PATH`` at it, so that ``jupyter lab``
  anywhere shows the cards. ``ftkit lessons`` does the same for the server it starts,
  which covers editable installs (pip does not install data files for those).
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

PATTERN = "[0-9][0-9]_*.ipynb"  # lessons/NN_topic.ipynb
CATALOG = "Fine-tuning lessons"  # the launcher section
CONFIG_NAME = "jp_app_launcher_ftkit.yaml"  # jupyter-app-launcher reads jp_app_launcher*.yaml
ENV = "JUPYTER_APP_LAUNCHER_PATH"  # one extra folder jupyter-app-launcher reads configurations from


def _ftkit_folder() -> Path:
    spec = importlib.util.find_spec("ftkit")  # finds the package without importing it (and torch)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("ftkit is not installed in this Python environment: pip install 'ftkit[lessons]'.")
    return Path(spec.origin).resolve().parent


def lessons_source() -> Path:
    """The folder with the original lessons (never edited: ``ftkit lessons`` works on copies)."""
    package = _ftkit_folder()
    shipped = package / "lessons"  # a wheel: the notebooks ship inside the package
    checkout = package.parent / "lessons"  # a source checkout or an editable install
    for folder in (shipped, checkout if (package.parent / "pyproject.toml").is_file() else None):
        if folder is not None and any(folder.glob(PATTERN)):
            return folder
    raise FileNotFoundError(f"No lessons ({PATTERN}) found in {shipped} or {checkout}: this ftkit installation "
                            "is incomplete. Reinstall it: pip install --force-reinstall 'ftkit[lessons]'.")


def lesson_paths(source: Path | None = None) -> list[Path]:
    """The original lessons, in order (``00_start_here.ipynb``, ``01_...``)."""
    return sorted((source or lessons_source()).glob(PATTERN))


def lesson_title(path: Path) -> str:
    """The lesson's title: the first ``# `` heading of its first markdown cell, else its file name."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = next("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        return next(line[2:].strip() for line in text.splitlines() if line.startswith("# "))
    except (OSError, ValueError, KeyError, StopIteration):
        return path.stem


def _icon(number: str) -> str:
    return ("<svg xmlns='http://www.w3.org/2000/svg' width='52' height='52' viewBox='0 0 52 52'>"
            "<rect x='2' y='2' width='48' height='48' rx='8' fill='#e8710a'/>"
            "<text x='26' y='34' text-anchor='middle' font-family='sans-serif' font-size='22' font-weight='bold' "
            f"fill='white'>{number}</text></svg>")


def write_launcher_config(root: str | Path, source: Path | None = None) -> Path:
    """Write the launcher cards (one per lesson) to ``root/jupyter_app_launcher/``; return the YAML file.

    ``root`` is laid out like a Jupyter data folder, so it can go in ``JUPYTER_PATH``. Each
    card's ``source`` is the original lesson, by absolute path: jupyter-app-launcher reads
    it when the server starts, and the card writes a fresh copy of it when clicked.
    """
    folder = Path(root) / "jupyter_app_launcher"
    folder.mkdir(parents=True, exist_ok=True)
    cards = []
    for path in lesson_paths(source):
        icon = folder / f"ftkit-lesson-{path.name[:2]}.svg"
        icon.write_text(_icon(path.name[:2]), encoding="utf-8")
        cards.append({"title": path.stem, "description": f"{lesson_title(path)} (opens a fresh copy of the lesson)",
                      "source": str(path.resolve()), "type": "notebook", "catalog": CATALOG, "icon": str(icon)})
    # JSON is YAML; ASCII escapes keep it readable whatever the server's locale encoding is.
    text = "# Written by ftkit: the launcher cards of its lessons.\n" + json.dumps(cards, indent=1) + "\n"
    config = folder / CONFIG_NAME
    partial = folder / f".{CONFIG_NAME}.{os.getpid()}"
    partial.write_text(text, encoding="ascii")
    os.replace(partial, config)  # atomic: a server starting meanwhile never reads half a file
    return config


def launcher_env(env: dict, root: str | Path) -> dict:
    """A copy of ``env`` in which jupyter-app-launcher finds the cards written to ``root``.

    ``JUPYTER_APP_LAUNCHER_PATH`` holds a single folder; when another one is already
    there, ``root`` goes first in ``JUPYTER_PATH`` instead (it is laid out as a data folder).
    """
    env = dict(env)
    folder = str(Path(root) / "jupyter_app_launcher")
    if env.get(ENV) in (None, "", folder):
        env[ENV] = folder
    else:
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), env.get("JUPYTER_PATH")) if p)
    return env


def has_cards(env: dict) -> bool:
    """Whether ``env`` already points jupyter-app-launcher at ftkit's cards (``ftkit lessons`` sets it)."""
    folders = [env.get(ENV)] + [str(Path(p) / "jupyter_app_launcher") for p in
                                (env.get("JUPYTER_PATH") or "").split(os.pathsep) if p]
    return any(f and (Path(f) / CONFIG_NAME).is_file() for f in folders)


# --- the Jupyter server extension -------------------------------------------------------------------


def _jupyter_server_extension_points():
    return [{"module": "ftkit_jupyter"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Give this server the lesson cards, unless its environment already has them; never fail the server."""
    try:
        if has_cards(os.environ):
            return
        folder = Path(tempfile.mkdtemp(prefix="ftkit-launcher-"))
        atexit.register(shutil.rmtree, folder, True)
        write_launcher_config(folder)
        os.environ.update(launcher_env(os.environ, folder))
        serverapp.log.info(f"ftkit: launcher cards for the lessons in {lessons_source()}")
    except Exception as err:  # a broken lesson folder must not stop Jupyter from starting
        serverapp.log.warning(f"ftkit: no launcher cards for the lessons: {type(err).__name__}: {err}")
