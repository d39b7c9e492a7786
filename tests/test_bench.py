"""bench/gpu.py keeps working: its --smoke run on the CPU prints the table and saves the JSON it promises.

The numbers of a smoke run mean nothing (tiny models, a few steps, a shared CPU); what is
checked is that every row is measured, positive, and the same in the table and the file.
"""
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "bench" / "gpu.py"
ROWS = {("resnet18 32px", "hand loop"), ("resnet18 32px", "ft.fit"),
        ("tiny-bert 16 tokens", "hand loop"), ("tiny-bert 16 tokens", "ft.fit"),
        ("tiny-bert 16 tokens", "HF Trainer adamw_torch"), ("tiny-bert 16 tokens", "HF Trainer default (fused)")}


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _one_json(folder):
    files = list(Path(folder).iterdir())
    assert [f.name for f in files if f.name.startswith(".tmp-")] == []  # every write finished
    assert len(files) == 1 and re.fullmatch(r"gpu-\d{8}-\d{6}\.json", files[0].name), files
    return json.loads(files[0].read_text())


def test_gpu_bench_smoke_prints_the_table_and_saves_the_json(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, str(GPU), "--smoke", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout

    # The table: one line per (workload, method), a positive throughput in its first number column.
    printed = {}
    for workload, method in ROWS:
        match = re.search(rf"^{re.escape(workload)}\s+{re.escape(method)}\s+([0-9.]+)\s+([0-9.]+)\s", out, re.MULTILINE)
        assert match, f"no row for {workload} / {method} in:\n{out}"
        printed[workload, method] = float(match.group(1))
        assert printed[workload, method] > 0 and float(match.group(2)) > 0
    assert re.search(r"measured matmul rate [0-9.e+-]+ TFLOP/s", out)
    assert "ft.fit / hand loop" in out and "ft.fit / HF Trainer adamw_torch" in out

    data = _one_json(tmp_path)
    assert data["script"] == "gpu" and data["complete"] is True and data["finished"]
    machine = data["machine"]
    for key in ("date", "cpu", "cores", "torch", "transformers", "gpu", "git_commit"):
        assert key in machine, key
    assert machine["cores"] >= 1 and machine["torch"] == torch.__version__
    assert data["args"]["smoke"] is True and data["matmul_tflops"] > 0
    rows = {(r["workload"], r["method"]): r for r in data["rows"]}
    assert set(rows) == ROWS and len(data["rows"]) == len(ROWS)
    for key, row in rows.items():
        assert row["timed_steps"] == 3 and row["warmup_steps"] == 2
        for field in ("per_s", "ms_per_step", "seconds", "tflops", "mfu", "mfu_formula", "call_seconds"):
            assert row[field] > 0, (key, field, row[field])
        assert math.isclose(row["per_s"], printed[key], rel_tol=0.01, abs_tol=0.06)  # the table shows the file
        assert math.isclose(row["ms_per_step"] * row["per_s"], 1000 * row["batch_size"], rel_tol=1e-3)
        assert math.isfinite(row["final_loss"])
    # What the rows claim about how they trained.
    fit = rows["tiny-bert 16 tokens", "ft.fit"]
    assert fit["amp"] == "fp32" and fit["path"] == "full"  # the CPU trains in fp32, the whole model
    assert rows["tiny-bert 16 tokens", "HF Trainer adamw_torch"]["fused"] is False
    assert rows["tiny-bert 16 tokens", "HF Trainer default (fused)"]["fused"] is True
    assert all(v > 0 for v in data["ratios"].values()) and len(data["ratios"]) == 4


def test_gpu_bench_budget_skips_and_still_saves(tmp_path):
    """Past its time budget the script measures nothing more, but says so in the table and the file."""
    gpu = _load("bench_gpu", GPU)
    gpu.main(["--smoke", "--budget", "0", "--only", "bert", "--threads", str(torch.get_num_threads()),
              "--out", str(tmp_path)])
    data = _one_json(tmp_path)
    assert data["complete"] is True and data["ratios"] == {}
    assert len(data["rows"]) == 4 and all(r["skipped"].startswith("time budget") for r in data["rows"])


def test_record_writes_plain_json_and_distinct_files(tmp_path):
    record = _load("bench_record", ROOT / "bench" / "_record.py")
    first = record.Record("demo", {"steps": 3, "path": tmp_path}, out=tmp_path)
    second = record.Record("demo", {}, out=tmp_path)
    assert first.path != second.path  # two runs in the same second keep both files
    first.add({"value": float("nan"), "big": 1 / 3, "shape": (2, 3)})
    saved = json.loads(first.path.read_text())
    assert saved["complete"] is False and saved["args"]["path"] == str(tmp_path)
    assert saved["rows"] == [{"value": None, "big": 0.333333, "shape": [2, 3]}]
    first.finish(total=2.0)
    saved = json.loads(first.path.read_text())
    assert saved["complete"] is True and saved["total"] == 2.0 and saved["finished"]

