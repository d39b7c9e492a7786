"""The lessons in a real browser: JupyterLab 4 (and Notebook 7) driven by Playwright with Debian's Chromium.

One server for the module, started the way a learner starts it: ``ftkit lessons DIR --no-browser``
(lessons copied to a temporary working folder), on 127.0.0.1, a free port and a random token;
it is always stopped. Kernels get the environment a learner has (progress bars and live views
on). Screenshots go to ``test-artifacts/browser/`` (printed at the end; ``pytest -s`` shows it).

Skipped only when Playwright or ``/usr/bin/chromium`` is missing (``.ci/run`` installs both).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)",
                allow_module_level=True)

from ftkit_jupyter import CATALOG, lesson_paths  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "browser"
LESSON_03 = "03_freezing_and_unfreezing"
NB = ".jp-NotebookPanel:visible"  # the notebook on show (not one in a hidden tab)
LIVE_CHECK = """\
import ftkit as ft

model = ft.load_model("glyph-resnet", num_classes=10)
data = ft.load_dataset("digits", model, seed=0)
train = ft.few_shot(data.train, per_class=10, seed=0)
history = ft.fit(model, train, data.val.subset(range(60)), epochs=3, batch_size=20, seed=0)  # bars + live view
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running Jupyter server: its URL, token, working folder and REST API."""

    def __init__(self, url: str, token: str, root: Path, proc: subprocess.Popen, log: Path):
        self.url, self.token, self.root, self.proc, self.log = url, token, root, proc, log

    def api(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def shut_down_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home = tmp_path_factory.mktemp("lab")
    root = home / "ftkit-lessons"
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no "get notified about news?" toast over the screenshots, no update check (offline anyway)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    # every cell in the page (not only those in view): their prompts say what ran, screenshots show it all
    (home / "settings" / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "MPLBACKEND")}  # a learner's kernel
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    env.pop("JUPYTER_APP_LAUNCHER_PATH", None)
    port, token = _free_port(), secrets.token_hex(16)
    log = ARTIFACTS / "jupyter.log"
    cmd = [sys.executable, "-m", "ftkit.cli", "lessons", str(root), "--no-browser", "--port", str(port),
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
           "--ServerApp.allow_root=True"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, root, proc, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`ftkit lessons` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                server.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in 180 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield server
    finally:
        try:
            server.shut_down_kernels()
        except Exception:
            pass
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):  # the whole group: ftkit and jupyter
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        print(f"\nbrowser test artefacts (screenshots, server log): {ARTIFACTS}")


@pytest.fixture(scope="module")
def browser(lab):
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
    lab.shut_down_kernels()  # one lesson's kernel at a time on a small machine


def _open(page, lab, path: str, app: str = "lab/tree") -> None:
    """Open a notebook and wait until its kernel is ready (choosing the default kernel if asked)."""
    page.goto(f"{lab.url}/{app}/{path}?reset&token={lab.token}")  # reset: no tabs from an earlier page
    page.locator(f"{NB} .jp-Cell").first.wait_for(timeout=120_000)
    deadline = time.monotonic() + 180
    while _kernel_states(lab, path) != {"idle"}:
        dialog = page.locator(".jp-Dialog button", has_text="Select")
        if dialog.count():
            dialog.first.click()
        assert time.monotonic() < deadline, f"{path}: the kernel did not start"
        time.sleep(0.5)


def _kernel_states(lab, path: str) -> set:
    return {s["kernel"]["execution_state"] for s in lab.api("GET", "/api/sessions")
            if s["path"] == path and s.get("kernel")}


def _run_all(page, lab, path: str, timeout: float, watch: tuple[str, ...] = ()) -> set:
    """Run all cells from the menu; wait until no cell is queued or running.

    Returns the CSS selectors of ``watch`` seen on the page meanwhile (a progress bar is only
    there while its loop runs). An error stops the run; the caller reads the saved outputs.
    """
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    seen, start, busy_seen, quiet = set(), time.monotonic(), False, 0
    while quiet < 3:  # three polls in a row with nothing queued or running
        time.sleep(0.3)
        seen |= {sel for sel in watch if sel not in seen and page.locator(f"{NB} {sel}").count()}
        prompts = [p.strip() for p in page.locator(f"{NB} .jp-CodeCell .jp-InputPrompt").all_inner_texts()]
        if "[*]:" in prompts:
            busy_seen, quiet = True, 0
        elif busy_seen or all(p[1:-2].isdigit() for p in prompts):
            quiet += 1
        if time.monotonic() - start > timeout:
            _screenshot(page, f"{Path(path).stem}-timeout")
            pytest.fail(f"{path}: still running after {timeout:.0f} s; prompts {prompts}")
    return seen


def _save_and_read(page, lab, path: str):
    """Save the notebook from the page and read it back from disk."""
    before = lab.api("GET", f"/api/contents/{path}?content=0")["last_modified"]
    page.locator(f"{NB} .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while lab.api("GET", f"/api/contents/{path}?content=0")["last_modified"] == before:
        assert time.monotonic() < deadline, f"{path}: could not save the notebook"
        time.sleep(0.3)
    return nbformat.from_dict(lab.api("GET", f"/api/contents/{path}?content=1&type=notebook")["content"])


def _assert_ran_without_errors(nb, name: str) -> None:
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(code) for o in c.outputs
              if o.output_type == "error"]
    assert not errors, f"{name}: error outputs {errors}"
    not_run = [i for i, c in enumerate(code) if c.source.strip() and c.execution_count is None]
    assert not not_run, f"{name}: code cells {not_run} did not run"


def _screenshot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def _screenshot_notebook(page, name: str) -> Path:
    """The whole notebook in one picture: the page made as tall as the notebook for a moment."""
    size = page.viewport_size
    height = page.locator(f"{NB} .jp-Notebook").first.evaluate(
        "n => { const s = n.querySelector('.jp-WindowedPanel-outer') || n; s.scrollTop = 0; return s.scrollHeight; }")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 200, 16_000)})
    page.wait_for_timeout(1000)
    try:
        return _screenshot(page, name)
    finally:
        page.set_viewport_size(size)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the launcher -----------------------------------------------------------------------------------


def test_launcher_shows_a_card_per_lesson_and_a_card_opens_a_fresh_copy(page, lab):
    lessons = lesson_paths()
    page.goto(f"{lab.url}/lab?reset&token={lab.token}")
    section = page.locator(".jp-Launcher-section", has_text=CATALOG)
    section.wait_for(timeout=120_000)
    cards = section.locator(".jp-LauncherCard")
    assert sorted(t.strip() for t in cards.locator(".jp-LauncherCard-label").all_inner_texts()) == \
        [p.stem for p in lessons]
    _screenshot(page, "launcher")
    first = lessons[0]
    assert (lab.root / first.name).exists()  # ftkit lessons copied it: the card must not overwrite it
    copied = _sha(lab.root / first.name)
    cards.filter(has=page.locator(".jp-LauncherCard-label", has_text=first.stem)).first.click()
    fresh = f"{first.stem}-1.ipynb"
    page.locator(".lm-TabBar-tabLabel", has_text=fresh).wait_for(timeout=60_000)
    deadline = time.monotonic() + 30
    while not (lab.root / fresh).exists():
        assert time.monotonic() < deadline, f"the card did not write {fresh}"
        time.sleep(0.3)
    _screenshot(page, "launcher-card-opened")
    original, opened = nbformat.read(first, as_version=4), nbformat.read(lab.root / fresh, as_version=4)
    assert [c.source for c in opened.cells] == [c.source for c in original.cells]
    assert _sha(lab.root / first.name) == copied


# --- lessons, run in JupyterLab ----------------------------------------------------------------------


def test_lesson_00_runs_with_live_plots_and_progress_bars(page, lab):
    name = "00_start_here.ipynb"
    original = _sha(REPO / "lessons" / name)
    _open(page, lab, name)
    seen = _run_all(page, lab, name, timeout=1800, watch=(".widget-hprogress .progress-bar",))
    _screenshot_notebook(page, "00_start_here")
    nb = _save_and_read(page, lab, name)
    _assert_ran_without_errors(nb, name)
    assert ".widget-hprogress .progress-bar" in seen, "no tqdm progress bar was shown while fit ran"
    live = page.locator(f"{NB} .jp-OutputArea-output", has=page.locator("img.widget-image")).first
    live.scroll_into_view_if_needed()
    assert "done" in live.inner_text()  # the live view's numbers line, at the end of the run
    assert live.locator("img.widget-image").first.get_attribute("src").startswith("blob:")
    live.screenshot(path=str(ARTIFACTS / "00_start_here-live-view.png"))
    assert _sha(REPO / "lessons" / name) == original  # the learner ran a copy; the original is untouched


def test_lesson_03_runs_and_its_widgets_respond(page, lab):
    name = f"{LESSON_03}.ipynb"
    if not (lab.root / name).exists():
        pytest.skip(f"lessons/{name} is not written yet")
    _open(page, lab, name)
    _run_all(page, lab, name, timeout=1800)
    _screenshot_notebook(page, LESSON_03)
    _assert_ran_without_errors(_save_and_read(page, lab, name), name)

    # the freeze-depth slider: moving it changes the trainable-parameter total and bar chart on the page
    explorer = page.locator(f"{NB} .jp-OutputArea-output",
                            has=page.locator(".widget-slider", has_text="frozen groups")).first
    slider = explorer.locator(".widget-slider", has_text="frozen groups").first
    total = explorer.locator(".widget-html", has_text="trainable").first
    chart = explorer.locator("img.widget-image").first
    slider.scroll_into_view_if_needed()
    before, depth, old_chart = total.inner_text(), slider.locator(".widget-readout").inner_text(), chart.get_attribute("src")
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowLeft" if depth.strip() != "0" else "ArrowRight")
    changed = "([el, attr, old]) => (attr ? el.getAttribute(attr) : el.innerText) !== old"
    page.wait_for_function(changed, arg=[total.element_handle(), None, before], timeout=60_000)
    page.wait_for_function(changed, arg=[chart.element_handle(), "src", old_chart], timeout=60_000)
    assert slider.locator(".widget-readout").inner_text() != depth
    assert total.inner_text() != before and "trainable" in total.inner_text()
    explorer.screenshot(path=str(ARTIFACTS / f"{LESSON_03}-slider-moved.png"))

    # a Run button: the panel trains again, a new training-curve image appears, its table gets a row
    panel = page.locator(f"{NB} .jp-OutputArea-output", has=page.locator("button", has_text="Run")).filter(
        has=page.locator("img.widget-image")).first
    image = panel.locator("img.widget-image").first
    panel.scroll_into_view_if_needed()
    old, rows = image.get_attribute("src"), panel.locator("table tr").count()
    panel.locator("button", has_text="Run").first.click()
    page.wait_for_function("([el, old]) => el.getAttribute('src') && el.getAttribute('src') !== old && "
                           "el.offsetWidth > 0", arg=[image.element_handle(), old], timeout=600_000)
    page.wait_for_function("([el, n]) => el.querySelectorAll('table tr').length > n",
                           arg=[panel.element_handle(), rows], timeout=600_000)
    assert image.get_attribute("src").startswith("blob:") and image.get_attribute("src") != old
    assert "running..." not in panel.inner_text() and "done" in panel.inner_text()
    panel.screenshot(path=str(ARTIFACTS / f"{LESSON_03}-run-clicked.png"))


# --- Notebook 7 -------------------------------------------------------------------------------------


def test_live_plot_and_progress_bars_in_notebook_7(page, lab):
    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is not installed (pip install notebook)")
    name = "live_check.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LIVE_CHECK)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab.root / name)
    _open(page, lab, name, app="notebooks")
    assert "/notebooks/" in page.url and page.locator(".jp-LabShell").count() == 0  # Notebook 7, not JupyterLab
    seen = _run_all(page, lab, name, timeout=600, watch=(".widget-hprogress .progress-bar",))
    _screenshot_notebook(page, "notebook7-live-view")
    _assert_ran_without_errors(_save_and_read(page, lab, name), name)
    assert ".widget-hprogress .progress-bar" in seen, "no tqdm progress bar was shown while fit ran"
    live = page.locator(f"{NB} .jp-OutputArea-output", has=page.locator("img.widget-image")).first
    assert "done" in live.inner_text() and "after epoch 3" in live.inner_text()
    assert live.locator("img.widget-image").first.get_attribute("src").startswith("blob:")
