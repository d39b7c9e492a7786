"""``ftkit lessons [DIR]``: copy the lessons to a working folder and open them in JupyterLab.

The originals (inside the installed package, or ``lessons/`` in a source checkout) are never
edited: a learner works on copies in ``DIR`` (default ``./ftkit-lessons``) and can always get
a lesson back as shipped.

    ftkit lessons                  copy the lessons that are missing, then start JupyterLab there
    ftkit lessons --list           each lesson and the state of your copy
    ftkit lessons --reset 03       restore lesson 03 as shipped; your version goes to DIR/backups/
    ftkit lessons --reset all      the same for every lesson
    ftkit lessons --no-browser --port 8890 --ServerApp.ip=0.0.0.0   (other options go to JupyterLab)

Copying never overwrites: a copy you have (edited or not) is kept. ``--reset`` keeps your
version in ``DIR/backups/`` when it differs from the original, so no work is ever lost.
JupyterLab starts with the launcher section "Fine-tuning lessons" (see ``ftkit_jupyter``):
a card opens a fresh copy of a lesson next to yours.
"""
from __future__ import annotations

import filecmp
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.util import cache_dir

DEFAULT_DIR = "ftkit-lessons"
EXTRAS = ("README.md",)  # copied too when missing (the lessons' index); not lessons, never reset


class LessonsError(Exception):
    """A problem the learner can fix; ``ftkit lessons`` prints it without a traceback."""


@dataclass
class CopyReport:
    copied: list[str]  # lessons copied now
    kept: list[str]  # lessons the folder already had (never overwritten)


def _originals() -> list[Path]:
    from ftkit_jupyter import lesson_paths, lessons_source

    try:
        return lesson_paths(lessons_source())
    except FileNotFoundError as err:
        raise LessonsError(str(err)) from None


def resolve(name: str, originals: list[Path] | None = None) -> list[Path]:
    """The original lessons meant by ``name``: ``all``, ``3``, ``03``, ``03_freezing_and_unfreezing`` or its file name."""
    originals = originals if originals is not None else _originals()
    if name == "all":
        return originals
    key = name.strip().removesuffix(".ipynb")
    if key.isdigit():
        key = f"{int(key):02d}"
    found = [p for p in originals if p.stem == key or p.name[:2] == key]
    if not found:
        raise LessonsError(f"There is no lesson {name!r}. Give a number (03), a name "
                           f"({originals[0].stem if originals else '00_start_here'}) or 'all'; the lessons are: "
                           + ", ".join(p.stem for p in originals) + ".")
    return found


def _working_folder(folder: str | Path) -> Path:
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise LessonsError(f"{folder} is a file, not a folder: give another working folder, e.g. "
                           f"`ftkit lessons {DEFAULT_DIR}`.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LessonsError(f"Cannot create the working folder {folder}: {err.strerror}. "
                           "Give a folder you can write to: `ftkit lessons DIR`.") from None
    return folder.resolve()


def copy_lessons(folder: str | Path) -> CopyReport:
    """Copy into ``folder`` every lesson it does not have yet; never overwrite one it has."""
    originals = _originals()
    folder = _working_folder(folder)
    report = CopyReport([], [])
    for path in originals:
        target = folder / path.name
        if target.exists():
            report.kept.append(path.stem)
        else:
            shutil.copy2(path, target)
            report.copied.append(path.stem)
    for name in EXTRAS:
        extra = originals[0].parent / name
        if extra.is_file() and not (folder / name).exists():
            shutil.copy2(extra, folder / name)
    return report


def reset_lessons(folder: str | Path, name: str) -> list[tuple[str, Path | None]]:
    """Restore lessons as shipped; return ``(lesson, backup)`` pairs (backup None: nothing of yours to keep).

    A copy that differs from the original is first moved to ``folder/backups/NAME-<time>.ipynb``.
    """
    chosen = resolve(name)
    folder = _working_folder(folder)
    done = []
    for path in chosen:
        target, backup = folder / path.name, None
        if target.exists() and not filecmp.cmp(path, target, shallow=False):
            backups = folder / "backups"
            backups.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            backup = backups / f"{path.stem}-{stamp}.ipynb"
            n = 1
            while backup.exists():  # two resets within a second
                n += 1
                backup = backups / f"{path.stem}-{stamp}-{n}.ipynb"
            shutil.copy2(target, backup)
        shutil.copy2(path, target)
        done.append((path.stem, backup))
    return done


def lesson_states(folder: str | Path) -> list[tuple[str, str]]:
    """``(lesson, state)`` for every lesson: ``not copied``, ``as shipped`` or ``edited``."""
    folder = Path(folder).expanduser()
    rows = []
    for path in _originals():
        target = folder / path.name
        state = ("not copied" if not target.exists() else
                 "as shipped" if filecmp.cmp(path, target, shallow=False) else "edited")
        rows.append((path.stem, state))
    return rows


def jupyter_command(folder: Path, *, port: int | None = None, browser: bool = True,
                    extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The command that starts JupyterLab on ``folder`` (this Python's JupyterLab)."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}"]
    if port is not None:
        cmd.append(f"--ServerApp.port={port}")
    if not browser:
        cmd.append("--no-browser")
    return cmd + list(extra)


def jupyter_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with the lessons' launcher cards set up for the server."""
    from ftkit_jupyter import launcher_env, write_launcher_config

    # one folder per Python environment, rewritten at every start: the cards follow its installed lessons
    root = cache_dir("jupyter", hashlib.sha1(sys.prefix.encode()).hexdigest()[:12])
    write_launcher_config(root, _originals()[0].parent)
    return launcher_env(dict(os.environ if env is None else env), root)


def start_jupyter(cmd: list[str], env: dict, cwd: Path) -> int:
    """Run JupyterLab until it stops; Ctrl-C is JupyterLab's to handle (it asks to confirm)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the terminal sent it to JupyterLab too; wait for its answer
            continue


def run(args) -> int:
    """``ftkit lessons``, from parsed arguments (see ``ftkit.cli``)."""
    try:
        return _run(args)
    except LessonsError as err:
        print(f"ftkit lessons: error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    folder, extra = args.dir, [a for a in getattr(args, "passed_on", ()) if a != "--"]
    if folder.startswith("-"):  # `ftkit lessons -- --opt`: argparse took the first option for DIR
        folder, extra = DEFAULT_DIR, [folder] + extra
    if args.port is not None and not 0 < args.port < 65536:
        raise LessonsError(f"--port must be from 1 to 65535; got {args.port}.")
    if args.list:
        for stem, state in lesson_states(folder):
            print(f"{stem:40s} {state}")
        return 0
    if args.reset:
        for stem, backup in reset_lessons(folder, args.reset):
            print(f"restored {stem}" + (f"; your version is in {backup}" if backup else ""))
        print(f"Open them with: ftkit lessons {folder}")
        return 0
    report = copy_lessons(folder)
    path = _working_folder(folder)
    if report.copied:
        print(f"Copied {len(report.copied)} lesson(s) to {path}: {', '.join(report.copied)}")
    if report.kept:
        print(f"Kept your copies of {len(report.kept)} lesson(s) (`ftkit lessons --reset NAME` restores one).")
    if importlib.util.find_spec("jupyterlab") is None:
        raise LessonsError("JupyterLab is not installed in this environment. Install it with "
                           "pip install 'ftkit[lessons]', then run `ftkit lessons` again.")
    if importlib.util.find_spec("jupyter_app_launcher") is None:
        print("(No launcher cards: jupyter-app-launcher is missing; pip install 'ftkit[lessons]' adds it.)")
    print("Starting JupyterLab (Ctrl-C stops it). The launcher's \"Fine-tuning lessons\" cards open fresh copies.")
    return start_jupyter(jupyter_command(path, port=args.port, browser=not args.no_browser, extra=extra),
                         jupyter_env(), path)


def add_parser(sub) -> None:
    """Add the ``lessons`` command to ``ftkit``'s sub-commands."""
    import argparse

    p = sub.add_parser("lessons", help="copy the lessons to a working folder and open them in JupyterLab",
                       description="Copy the lessons to a working folder and open them in JupyterLab. The originals "
                       "are never edited, and a copy you already have is never overwritten.",
                       epilog="examples:\n" + __doc__.split("\n\n")[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", nargs="?", default=DEFAULT_DIR, help=f"the working folder (default: ./{DEFAULT_DIR})")
    p.add_argument("--reset", metavar="NAME|all", help="restore a lesson (03, 03_freezing_and_unfreezing) or all "
                   "as shipped; a copy you changed is kept in DIR/backups/")
    p.add_argument("--list", action="store_true", help="list the lessons and the state of your copies")
    p.add_argument("--no-browser", action="store_true", help="start JupyterLab without opening a browser")
    p.add_argument("--port", type=int, default=None, help="JupyterLab's port (default: 8888, or the next free one)")
    p.set_defaults(run=run, passed_on=[])  # options ftkit does not know go to JupyterLab
