"""Binder's environment, rebuilt as far as this machine allows, and lesson 00 run in it.

repo2docker copies the repository, installs ``binder/requirements.txt``, then runs
``binder/postBuild``. This test does the same in a fresh virtual environment: the same
requirement lines, except the CPU-only torch and torchvision, which come from PyTorch's
own index (not reachable here): this machine's installed torch stands in for them (made
visible to the new environment through a ``.pth`` file, so pip counts it as installed and
keeps it, as it keeps Binder's CPU torch). Then ``binder/postBuild`` itself runs, and:

- pip did not replace torch (no CUDA download on Binder);
- ftkit is a regular, non-editable install whose lessons ship inside it;
- a Jupyter server started there shows the lessons' launcher cards (the server extension
  that a wheel installs, no Node.js);
- lesson 00 runs top to bottom in a kernel of that environment, within Binder's 2 GB.

The torch that stands in here is a CUDA build, which takes about 290 MB more memory once
imported than a CPU build: the memory check measures what importing it costs and counts a
CPU torch's cost instead (and the Jupyter server's, measured in the launcher test).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"
BINDER_MEMORY_MB = 2048  # mybinder.org's limit for a whole session
CPU_TORCH_MB = 300  # importing a CPU-only torch: 217 MB measured for torch 2.13.0+cpu here
SERVER_MB = 150  # JupyterLab's server, with its extensions
STAND_IN = ("torch", "torchvision")  # the CPU builds Binder installs; this machine's torch stands in


def _closure(names) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` and everything they require (extras included), recursively."""
    seen, todo, out = set(), [(name, ()) for name in names], []
    while todo:
        name, extras = todo.pop()
        key = (re.sub(r"[-_.]+", "-", name).lower(), tuple(sorted(extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(key[0])
        except importlib.metadata.PackageNotFoundError:
            continue
        if all(d.metadata["Name"] != dist.metadata["Name"] for d in out):
            out.append(dist)
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((req.name, tuple(req.extras)))
    return out


def _link_local_torch(target: Path) -> None:
    """A folder of links to this environment's torch and torchvision, their dependencies and metadata."""
    target.mkdir()
    for dist in _closure(STAND_IN):
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (target / top).exists() and top != "__pycache__":
                (target / top).symlink_to(source)


def _copy_repository(dest: Path) -> None:
    """What repo2docker gets: the repository's files (tracked, and new ones not ignored)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        source = REPO / name
        if (REPO / Path(name).parts[0] / "pyvenv.cfg").exists():
            continue  # a virtual environment that .gitignore does not cover (e.g. .ci/run's)
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _requirements_here(text: str) -> list[str]:
    """binder/requirements.txt as this machine can install it: the CPU torch lines become the local torch."""
    lines = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("--extra-index-url") and "download.pytorch.org" in line:
            continue
        if Requirement(line).name in STAND_IN:
            continue  # satisfied by the linked local build
        lines.append(line)
    return lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    """The built environment: (python, repository copy, environment variables, postBuild's output)."""
    home = tmp_path_factory.mktemp("binder")
    repo, venv = home / "repo", home / "venv"
    _copy_repository(repo)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    _link_local_torch(home / "local-torch")
    (site / "_local_torch.pth").write_text(str(home / "local-torch") + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv), PIP_NO_COMPILE="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", TQDM_DISABLE="1", JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"), JUPYTER_DATA_DIR=str(home / "jupyter-data"))
    requirements = home / "requirements-here.txt"
    lines = _requirements_here((BINDER / "requirements.txt").read_text())
    if lines:  # today only the torch lines, which the local torch satisfies
        requirements.write_text("\n".join(lines) + "\n")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], env=env, check=True,
                       capture_output=True, text=True)
    build = subprocess.run(["bash", str(repo / "binder" / "postBuild")], cwd=repo, env=env, capture_output=True,
                           text=True)
    assert build.returncode == 0, f"binder/postBuild failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return python, repo, env, build.stdout + build.stderr


def test_binder_files_are_what_repo2docker_needs():
    post_build = (BINDER / "postBuild").read_text()
    assert post_build.startswith("#!/bin/bash") and re.search(r"^set -e", post_build, re.M)
    assert os.access(BINDER / "postBuild", os.X_OK), "repo2docker runs postBuild: make it executable"
    assert re.search(r"pip install .*\"\.\[lessons\]\"", post_build)  # ftkit from the repository, not PyPI
    assert re.fullmatch(r"python-3\.(1[0-9])\n?", (BINDER / "runtime.txt").read_text())
    minor = int((BINDER / "runtime.txt").read_text().strip().split(".")[1])
    assert minor >= 10  # pyproject.toml: requires-python >= 3.10
    lines = [line.split("#")[0].strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    pins = {Requirement(line).name: str(Requirement(line).specifier) for line in lines
            if line and not line.startswith("-")}
    assert set(STAND_IN) <= set(pins) and all(pins[n].endswith("+cpu") for n in STAND_IN), pins  # CPU-only builds


def test_post_build_keeps_the_cpu_torch_and_installs_ftkit_with_its_lessons(binder_env):
    python, repo, env, log = binder_env
    installed = re.findall(r"Successfully installed (.*)", log)
    assert installed and "ftkit-" in installed[-1]
    names = {re.sub(r"-[^-]+$", "", p).lower() for p in installed[-1].split()}
    assert not names & {"torch", "torchvision", "triton"} and not any(n.startswith("nvidia") for n in names), names
    probe = ("import json, ftkit, ftkit_jupyter, torch; print(json.dumps({'ftkit': ftkit.__file__, "
             "'lessons': [p.name for p in ftkit_jupyter.lesson_paths()], 'source': str(ftkit_jupyter.lessons_source()),"
             " 'torch': torch.__file__}))")
    facts = json.loads(subprocess.run([str(python), "-c", probe], env=env, cwd="/", capture_output=True, text=True,
                                      check=True).stdout)
    site = str(Path(python).parent.parent)
    assert facts["ftkit"].startswith(site) and facts["source"].startswith(site)  # a regular install, not the checkout
    assert facts["lessons"] == sorted(p.name for p in (repo / "lessons").glob("[0-9][0-9]_*.ipynb"))
    assert "local-torch" in facts["torch"]  # the stand-in for the CPU torch, untouched by postBuild


def test_the_colab_install_line_keeps_the_installed_torch(binder_env, tmp_path):
    """Each lesson's first cell pip-installs ftkit from the repository on Colab, where torch is already
    installed. Here: the same requirement, the repository URL replaced by the local copy, in an
    environment that has a torch (pip's dry run reports what it would install)."""
    python, repo, env, _ = binder_env
    lines = set()
    for lesson in sorted((repo / "lessons").glob("[0-9][0-9]_*.ipynb")):
        setup = next(c for c in json.loads(lesson.read_text())["cells"] if c["cell_type"] == "code")
        lines |= set(re.findall(r'"(ftkit @ git\+https://github\.com/ftkit/ftkit[^"]*)"', "".join(setup["source"])))
    assert lines == {"ftkit @ git+https://github.com/ftkit/ftkit"}, lines  # the same line in every lesson
    report = tmp_path / "report.json"
    subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                    f"ftkit @ {repo.as_uri()}"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert "ftkit" in names and not names & {"torch", "torchvision", "triton", "ipywidgets"}, names
    assert not any(n.startswith("nvidia") for n in names), names


def test_jupyter_in_the_binder_environment_shows_the_lesson_cards(binder_env, tmp_path):
    python, repo, env, _ = binder_env
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(env, JUPYTER_RUNTIME_DIR=str(tmp_path))
    env.pop("JUPYTER_APP_LAUNCHER_PATH", None)
    proc = subprocess.Popen([str(python), "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.allow_root=True",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={repo}"],
                            env=env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/jupyterlab-app-launcher", method="POST",
                                         data=json.dumps({"method": "init_launcher"}).encode(),
                                         headers={"Authorization": f"token {token}"})
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    cards = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert proc.poll() is None and time.monotonic() < deadline, "JupyterLab did not start"
                time.sleep(0.5)
        status = Path(f"/proc/{proc.pid}/status")
        server_mb = int(re.search(r"VmHWM:\s+(\d+)", status.read_text())[1]) / 1024 if status.exists() else 0
    finally:
        os.killpg(proc.pid, 15)
        log = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert server_mb < SERVER_MB, f"the Jupyter server peaked at {server_mb:.0f} MB; SERVER_MB is {SERVER_MB}"
    ours = [c for c in cards if c.get("catalog") == "Fine-tuning lessons"]
    lessons = sorted((repo / "lessons").glob("[0-9][0-9]_*.ipynb"))
    assert [c["title"] for c in ours] == [p.stem for p in lessons], log[-2000:]
    for card, lesson in zip(ours, lessons):
        assert card["type"] == "notebook"  # a click writes a fresh copy of it, then opens that
        assert json.loads(card["sourceCode"])["cells"] == json.loads(lesson.read_text())["cells"]


def test_lesson_00_runs_in_the_binder_environment_within_2_gb(binder_env, tmp_path):
    python, repo, env, _ = binder_env
    runner = tmp_path / "run_lesson.py"
    runner.write_text(
        "import json, resource, sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, kernel_name='python3', timeout=1200,\n"
        "               resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "errors = [o.get('ename') for c in nb.cells if c.cell_type == 'code' for o in c.outputs\n"
        "          if o.output_type == 'error']\n"
        "print(json.dumps({'errors': errors, 'ran': sum(c.get('execution_count') is not None for c in nb.cells),\n"
        "                  'kernel_max_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n")
    work = tmp_path / "work"  # the kernel's folder; the lesson itself is read from the repository copy
    work.mkdir()
    env = dict(env, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), OMP_NUM_THREADS="2")
    done = subprocess.run([str(python), str(runner), str(repo / "lessons" / "00_start_here.ipynb"), str(work)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    code_cells = sum(c["cell_type"] == "code" for c in json.loads((repo / "lessons" / "00_start_here.ipynb")
                                                                   .read_text())["cells"])
    assert facts["errors"] == [] and facts["ran"] == code_cells

    # Memory. The kernel's peak, minus what importing the stand-in torch costs, plus what Binder's CPU
    # torch costs (217 MB for torch 2.13.0+cpu measured on this machine; 300 allowed), plus the server.
    torch_mb = float(subprocess.run([str(python), "-c", "import resource, torch; "
                                     "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                                    env=env, capture_output=True, text=True, check=True).stdout)
    lesson_mb = facts["kernel_max_rss_mb"] - torch_mb
    binder_mb = lesson_mb + CPU_TORCH_MB + SERVER_MB
    print(f"lesson 00 in the Binder environment: kernel peak {facts['kernel_max_rss_mb']:.0f} MB with this "
          f"machine's torch ({torch_mb:.0f} MB of it at import); on Binder about {binder_mb:.0f} MB with the server")
    assert facts["kernel_max_rss_mb"] < BINDER_MEMORY_MB  # even with the bigger CUDA build
    assert 100 < lesson_mb and binder_mb < BINDER_MEMORY_MB
