"""Save a benchmark's results as JSON, with the machine they were measured on.

One file per run, ``bench/results/<script>-<UTC time>.json``, rewritten after every row, so a
run stopped by a time limit still leaves what it measured (each write replaces the file
atomically, so the JSON is whole whenever the run stops). ``--out DIR`` or the environment
variable ``FTKIT_BENCH_RESULTS`` sends the files elsewhere (the tests use a temporary folder).

Example:
    >>> record = Record("gpu", vars(args), out=args.out)   # writes the machine and settings at once
    >>> record.add({"workload": "resnet50 224px", "method": "ft.fit", "per_s": per_s})
    >>> record.finish(ratios=ratios)                          # complete: true, and the end time
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def machine() -> dict[str, Any]:
    """What the numbers depend on: processor, cores, load, library versions, GPU, date, git commit."""
    import torch

    info: dict[str, Any] = {
        "date": _now(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # Other processes share the machine: a load above the core count makes timings noisy.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for name in ("torchvision", "transformers", "accelerate"):
        try:
            info[name] = metadata.version(name)  # without importing it (seconds for transformers)
        except metadata.PackageNotFoundError:
            info[name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    gpu_count=torch.cuda.device_count(), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info["gpu"] = None
    info.update(_git())
    return info


class Record:
    """A run's results file: set-up and machine first, then rows as they are measured."""

    def __init__(self, script: str, args: dict[str, Any], out: str | os.PathLike | None = None):
        folder = Path(out or os.environ.get("FTKIT_BENCH_RESULTS") or RESULTS)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        path, n = folder / f"{script}-{stamp}.json", 1
        while path.exists():  # two runs in the same second
            n += 1
            path = folder / f"{script}-{stamp}-{n}.json"
        self.path = path
        self.data: dict[str, Any] = {"script": script, "argv": sys.argv[1:], "args": _plain(args),
                                     "machine": machine(), "complete": False, "finished": None, "rows": []}
        self.write()

    def add(self, row: dict[str, Any]) -> None:
        """Append one measured row and save at once (a time limit may stop the run next)."""
        self.data["rows"].append(_plain(row))
        self.write()

    def note(self, **values: Any) -> None:
        """Run-level values (the GPU's measured matmul rate, ratios, what was skipped and why)."""
        self.data.update(_plain(values))
        self.write()

    def finish(self, **values: Any) -> Path:
        self.data.update(_plain(values), complete=True, finished=_now())
        self.write()
        return self.path

    def write(self) -> None:
        text = json.dumps(self.data, indent=1, allow_nan=False)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as f:
                f.write(text + "\n")
            os.chmod(temporary, 0o644)  # mkstemp makes it private; results are for everyone to read
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _plain(value: Any) -> Any:
    """JSON-ready: floats rounded to 6 significant digits, NaN and infinities as None, other objects as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> dict[str, Any]:
    """The commit the code was at, and whether the working tree had changes (then the numbers are of those)."""
    def run(*cmd: str) -> str | None:
        try:
            return subprocess.run(["git", *cmd], cwd=BENCH, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    if commit is None:  # a copy of the tree without .git (a rented GPU machine): the launcher may say
        commit = os.environ.get("FTKIT_BENCH_COMMIT")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}
