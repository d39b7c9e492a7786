"""``ftkit lessons``: working copies that never overwrite a learner's work, resets with backups, the launcher
cards, and JupyterLab's command line (its start is replaced by a stub: these tests take seconds).
The wheel test builds the package and checks that the lessons and the launcher configuration ship in it.
"""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

import ftkit.course.lessons_cli as lessons_cli
import ftkit_jupyter
from ftkit.cli import main
from ftkit.course.lessons_cli import LessonsError, copy_lessons, lesson_states, reset_lessons, resolve

REPO = Path(__file__).resolve().parent.parent
ORIGINALS = sorted((REPO / "lessons").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture
def started(monkeypatch):
    """Replace JupyterLab's start; record what it would have run."""
    calls = []
    monkeypatch.setattr(lessons_cli, "start_jupyter", lambda cmd, env, cwd: calls.append((cmd, env, cwd)) or 0)
    monkeypatch.delenv("JUPYTER_APP_LAUNCHER_PATH", raising=False)
    return calls


def _edit(path: Path, text: str) -> None:
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = text
    path.write_text(json.dumps(nb))


def test_lessons_are_found_at_run_time_in_the_checkout():
    assert ftkit_jupyter.lessons_source() == REPO / "lessons"
    assert ftkit_jupyter.lesson_paths() == ORIGINALS and ORIGINALS[0].name == "00_start_here.ipynb"
    assert ftkit_jupyter.lesson_title(ORIGINALS[0]).startswith("00 · Start here")


def test_a_packaged_lessons_folder_comes_first_and_a_missing_one_is_a_clear_error(tmp_path, monkeypatch):
    package = tmp_path / "site" / "ftkit"
    (package / "lessons").mkdir(parents=True)
    (package / "lessons" / "00_start_here.ipynb").write_text("{}")
    monkeypatch.setattr(ftkit_jupyter, "_ftkit_folder", lambda: package)
    assert ftkit_jupyter.lessons_source() == package / "lessons"  # an installed wheel
    (package / "lessons" / "00_start_here.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete. Reinstall it"):
        ftkit_jupyter.lessons_source()  # site/ has no pyproject.toml: no checkout to fall back on


def test_copies_every_lesson_then_never_overwrites_a_copy(tmp_path):
    folder = tmp_path / "work"
    report = copy_lessons(folder)
    assert report.copied == [p.stem for p in ORIGINALS] and report.kept == []
    for original in ORIGINALS:
        assert (folder / original.name).read_bytes() == original.read_bytes()
    assert (folder / "README.md").is_file()  # the lessons' index comes along
    _edit(folder / ORIGINALS[0].name, "my notes")
    (folder / ORIGINALS[-1].name).unlink()  # a lesson the learner deleted comes back; an edited one stays
    report = copy_lessons(folder)
    assert report.copied == [ORIGINALS[-1].stem] and ORIGINALS[0].stem in report.kept
    assert json.loads((folder / ORIGINALS[0].name).read_text())["cells"][0]["source"] == "my notes"
    states = dict(lesson_states(folder))
    assert states[ORIGINALS[0].stem] == "edited" and states[ORIGINALS[-1].stem] == "as shipped"
    assert dict(lesson_states(tmp_path / "nowhere")) == {p.stem: "not copied" for p in ORIGINALS}


def test_reset_restores_a_lesson_and_keeps_the_learners_version(tmp_path):
    folder = tmp_path / "work"
    copy_lessons(folder)
    lesson = folder / ORIGINALS[0].name
    _edit(lesson, "first try")
    [(stem, backup)] = reset_lessons(folder, "0")
    assert stem == ORIGINALS[0].stem and lesson.read_bytes() == ORIGINALS[0].read_bytes()
    assert backup.parent == folder / "backups" and "first try" in backup.read_text()
    _edit(lesson, "second try")  # a second reset within the same second gets its own backup
    [(_, again)] = reset_lessons(folder, ORIGINALS[0].name)
    assert again != backup and "second try" in again.read_text() and "first try" in backup.read_text()
    assert reset_lessons(folder, ORIGINALS[0].stem) == [(ORIGINALS[0].stem, None)]  # as shipped: nothing to keep
    assert [stem for stem, _ in reset_lessons(folder, "all")] == [p.stem for p in ORIGINALS]
    assert len(list((folder / "backups").iterdir())) == 2


def test_lesson_names_are_resolved_or_refused_with_the_list():
    assert resolve("00") == resolve("0") == resolve("00_start_here") == resolve("00_start_here.ipynb") == ORIGINALS[:1]
    assert resolve("all") == ORIGINALS
    with pytest.raises(LessonsError, match=r"no lesson '42'.*00_start_here"):
        resolve("42")


def test_command_copies_then_starts_jupyterlab_with_the_launcher_cards(tmp_path, started, capsys):
    folder = tmp_path / "work"
    assert main(["lessons", str(folder), "--no-browser", "--port", "8899", "--ServerApp.ip=127.0.0.1"]) == 0
    [(cmd, env, cwd)] = started
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"] and cwd == folder.resolve()
    assert f"--ServerApp.root_dir={folder.resolve()}" in cmd and "--ServerApp.port=8899" in cmd
    assert "--no-browser" in cmd and cmd[-1] == "--ServerApp.ip=127.0.0.1"  # unknown options go to JupyterLab
    assert sorted(p.name for p in folder.glob("*.ipynb")) == [p.name for p in ORIGINALS]
    config = Path(env["JUPYTER_APP_LAUNCHER_PATH"]) / ftkit_jupyter.CONFIG_NAME
    assert [c["source"] for c in json.loads(config.read_text().split("\n", 1)[1])] == [str(p) for p in ORIGINALS]
    out = capsys.readouterr().out
    assert f"Copied {len(ORIGINALS)} lesson(s)" in out and "Starting JupyterLab" in out
    assert main(["lessons", str(folder)]) == 0  # again: copies nothing, keeps everything, opens a browser
    assert "--no-browser" not in started[1][0] and "Kept your copies" in capsys.readouterr().out


def test_options_after_a_double_dash_go_to_jupyterlab_without_a_folder(tmp_path, started, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["lessons", "--", "--allow-root"]) == 0
    cmd = started[0][0]
    assert cmd[-1] == "--allow-root" and f"--ServerApp.root_dir={tmp_path / 'ftkit-lessons'}" in cmd


def test_list_and_reset_do_not_start_jupyterlab(tmp_path, started, capsys):
    folder = tmp_path / "work"
    assert main(["lessons", str(folder), "--list"]) == 0
    assert "not copied" in capsys.readouterr().out and not folder.exists()
    copy_lessons(folder)
    _edit(folder / ORIGINALS[0].name, "mine")
    assert main(["lessons", str(folder), "--reset", "00"]) == 0
    out = capsys.readouterr().out
    assert f"restored {ORIGINALS[0].stem}; your version is in {folder / 'backups'}" in out and started == []


@pytest.mark.parametrize("argv, message", [
    (["--reset", "99"], "There is no lesson '99'"),
    (["--port", "70000"], "--port must be from 1 to 65535"),
])
def test_mistakes_are_explained_without_a_traceback(argv, message, tmp_path, started, capsys):
    assert main(["lessons", str(tmp_path / "work")] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ftkit lessons: error: ") and message in err and "Traceback" not in err
    assert started == []


def test_a_file_in_the_way_and_a_missing_jupyterlab_are_explained(tmp_path, started, capsys, monkeypatch):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["lessons", str(tmp_path / "taken")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    real = lessons_cli.importlib.util.find_spec
    monkeypatch.setattr(lessons_cli.importlib.util, "find_spec",
                        lambda name, *args: None if name == "jupyterlab" else real(name, *args))
    assert main(["lessons", str(tmp_path / "work")]) == 2
    assert "pip install 'ftkit[lessons]'" in capsys.readouterr().err and started == []


def test_other_commands_still_refuse_unknown_options():
    with pytest.raises(SystemExit) as exit_:
        main(["models", "--bogus"])
    assert exit_.value.code == 2


# --- the launcher cards (jupyter-app-launcher) ----------------------------------------------------


def test_launcher_config_is_what_jupyter_app_launcher_reads(tmp_path):
    utils = pytest.importorskip("jupyter_app_launcher.utils", reason="jupyter-app-launcher (ftkit[lessons])")
    config = ftkit_jupyter.write_launcher_config(tmp_path)
    assert config == tmp_path / "jupyter_app_launcher" / "jp_app_launcher_ftkit.yaml"
    cards = utils.parse_config(str(config.parent), str(config))  # its own parser and schema check
    assert [c["title"] for c in cards] == [p.stem for p in ORIGINALS]
    for card, original in zip(cards, ORIGINALS):
        assert card["type"] == "notebook" and card["catalog"] == "Fine-tuning lessons"
        assert card["sourceCode"] == original.read_text()  # the card writes a copy of the original
        assert card["icon"].startswith("<svg") and original.name[:2] in card["icon"]


def test_launcher_environment_uses_the_launcher_path_or_else_jupyter_path(tmp_path):
    ftkit_jupyter.write_launcher_config(tmp_path)
    env = ftkit_jupyter.launcher_env({"PATH": "/bin"}, tmp_path)
    assert env == {"PATH": "/bin", "JUPYTER_APP_LAUNCHER_PATH": str(tmp_path / "jupyter_app_launcher")}
    assert ftkit_jupyter.has_cards(env)
    taken = ftkit_jupyter.launcher_env({"JUPYTER_APP_LAUNCHER_PATH": "/theirs", "JUPYTER_PATH": "/data"}, tmp_path)
    assert taken["JUPYTER_APP_LAUNCHER_PATH"] == "/theirs"  # the learner's own stays
    assert taken["JUPYTER_PATH"] == os.pathsep.join([str(tmp_path), "/data"]) and ftkit_jupyter.has_cards(taken)
    assert not ftkit_jupyter.has_cards({"JUPYTER_APP_LAUNCHER_PATH": "/theirs"})


def test_server_extension_gives_a_server_the_cards_once_and_never_fails_it(monkeypatch):
    messages = []
    app = SimpleNamespace(log=SimpleNamespace(info=messages.append, warning=messages.append))
    monkeypatch.setenv("JUPYTER_APP_LAUNCHER_PATH", "")  # restored (to unset) after the test
    monkeypatch.delenv("JUPYTER_APP_LAUNCHER_PATH")
    assert ftkit_jupyter._jupyter_server_extension_points() == [{"module": "ftkit_jupyter"}]
    ftkit_jupyter._load_jupyter_server_extension(app)
    folder = Path(os.environ["JUPYTER_APP_LAUNCHER_PATH"])
    assert (folder / ftkit_jupyter.CONFIG_NAME).is_file() and "launcher cards" in messages[-1]
    ftkit_jupyter._load_jupyter_server_extension(app)  # already there (e.g. set by `ftkit lessons`): unchanged
    assert os.environ["JUPYTER_APP_LAUNCHER_PATH"] == str(folder)
    monkeypatch.delenv("JUPYTER_APP_LAUNCHER_PATH")
    monkeypatch.setattr(ftkit_jupyter, "_ftkit_folder", lambda: folder / "no-such-package")
    ftkit_jupyter._load_jupyter_server_extension(app)
    assert "no launcher cards" in messages[-1] and "JUPYTER_APP_LAUNCHER_PATH" not in os.environ


def test_the_server_extension_does_not_import_torch():
    code = "import sys, ftkit_jupyter; ftkit_jupyter.lesson_paths(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


# --- the wheel ---------------------------------------------------------------------------------------


def test_wheel_ships_the_lessons_and_enables_the_launcher_cards(tmp_path):
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):  # a copy: building in the checkout would leave build/ behind
        if (REPO / name).is_file() and not (REPO / Path(name).parts[0] / "pyvenv.cfg").exists():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, text=True)
    [wheel] = (tmp_path / "dist").glob("ftkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"ftkit/lessons/{p.name}" for p in ORIGINALS} | {"ftkit/lessons/README.md"} <= set(names)
    assert not [n for n in names if n.startswith("ftkit/lessons/") and ".ipynb_checkpoints" in n]
    assert "ftkit_jupyter/__init__.py" in names
    enable = next(n for n in names if n.endswith("data/etc/jupyter/jupyter_server_config.d/ftkit_jupyter.json"))
    assert json.loads(zipfile.ZipFile(wheel).read(enable)) == {"ServerApp": {"jpserver_extensions": {"ftkit_jupyter": True}}}
    # installed (unpacked) from the wheel, the lessons are found inside the package, not in a checkout
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    found = subprocess.run([sys.executable, "-c", "import ftkit_jupyter; print(ftkit_jupyter.lessons_source())"],
                           env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")), cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == str(tmp_path / "site" / "ftkit" / "lessons")
