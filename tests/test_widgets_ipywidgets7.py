"""ftkit's widgets under ipywidgets 7, the version Colab ships (7.7.1), next to the 8.x of this environment.

ipywidgets 7.7.1 (and ipython_genutils, which it imports) are installed with pip into a
folder of their own that goes first on ``PYTHONPATH``, so they shadow 8.x for a child Python
and everything else comes from this environment. There:

- ``tests/test_widgets.py`` runs whole (every panel, driven as a lesson drives it);
- a notebook runs in a real kernel (real comms): a FreezeExplorer, a TrainPanel whose Run
  button trains in its background thread, ``fit`` with its live view and tqdm bars, and every
  widget made is one of ipywidgets' own (no third-party widget manager, which Colab needs
  for anything else).

The same kernel check runs with this environment's ipywidgets 8 too.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
COLAB_IPYWIDGETS = "7.7.1"

KERNEL_CHECK = '''\
import collections, dataclasses, time
import ipywidgets, torch
from torch import nn
import ftkit as ft
from ftkit.models.cards import ModelCard

print("ipywidgets", ipywidgets.__version__)
assert ipywidgets.__version__.startswith(EXPECTED), ipywidgets.__version__

card = ModelCard(name="tiny", source="zoo", task="image-classification", arch="", input_size=(1, 8, 8),
                 mean=(0.5,), std=(0.5,))
data = ft.load_dataset("digits", card)
data = dataclasses.replace(data, train=data.train.subset(range(128)), val=data.val.subset(range(64)))
torch.manual_seed(0)
model = nn.Sequential(collections.OrderedDict(
    stem=nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
    body=nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()),
    head=nn.Linear(32, 10)))

explorer = ft.FreezeExplorer(model)
display(explorer)
explorer.controls["depth"].value = 2
assert "trainable: 330 of" in explorer.total.value, explorer.total.value

panel = ft.TrainPanel(model, data, epochs=1, batch_size=32)
display(panel)
panel.run_button.click()                  # as a click does: trains in a background thread
history = panel.wait(timeout=120)
assert history is not None and len(history.epochs) == 1, panel.error
assert bytes(panel.view.image.value[:4]) == b"\\x89PNG" and "done" in panel.view.stats.value

history = ft.fit(model, data.train, data.val, epochs=2, batch_size=32)  # tqdm bars and a live view
assert len(history.epochs) == 2

import tqdm.notebook
bar = tqdm.notebook.tqdm(range(3))
list(bar)
assert isinstance(bar.container, ipywidgets.HBox)

# every widget made is one of ipywidgets' own: no third-party widget manager is needed (Colab)
made = getattr(ipywidgets.Widget, "widgets", None) or ipywidgets.widgets.widget._instances
modules = {w._model_module for w in made.values()} | {w._view_module for w in made.values() if w._view_module}
print(sorted(modules))
assert modules <= {"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"}, modules
print("checked", len(made), "widgets")
'''


@pytest.fixture(scope="module")
def ipywidgets7(tmp_path_factory):
    """A folder holding ipywidgets 7.7.1; put it first on PYTHONPATH."""
    folder = tmp_path_factory.mktemp("ipywidgets7")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--target", str(folder), f"ipywidgets=={COLAB_IPYWIDGETS}", "ipython_genutils==0.2.0"],
                   check=True, capture_output=True, text=True)
    return folder


def _env(folder: Path | None) -> dict:
    env = dict(os.environ)
    if folder is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)
    return env


def test_the_child_python_has_ipywidgets_7(ipywidgets7):
    out = subprocess.run([sys.executable, "-c", "import ipywidgets, ftkit; print(ipywidgets.__version__)"],
                         env=_env(ipywidgets7), capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == COLAB_IPYWIDGETS


def test_installing_ftkit_keeps_colabs_ipywidgets():
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    [spec] = [Requirement(r).specifier for r in requires("ftkit") if Requirement(r).name == "ipywidgets"]
    assert spec.contains(COLAB_IPYWIDGETS) and spec.contains("8.1.5"), spec  # satisfied as it is: pip keeps it


def test_widget_tests_pass_with_ipywidgets_7(ipywidgets7):
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                          str(REPO / "tests" / "test_widgets.py")],
                         env=_env(ipywidgets7), cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout and "error" not in run.stdout.lower()


@pytest.mark.parametrize("version", ["7", "8"])
def test_panels_live_view_and_progress_bars_in_a_kernel(version, ipywidgets7, monkeypatch, tmp_path):
    if version == "7":
        monkeypatch.setenv("PYTHONPATH", _env(ipywidgets7)["PYTHONPATH"])  # the kernel inherits it
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # a learner's kernel: progress bars and live views on
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"EXPECTED = {version + '.'!r}\n" + KERNEL_CHECK)])
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"ipywidgets {version}." in text and "checked" in text
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) >= 4  # the explorer, the panel, fit's live view, the tqdm bars
