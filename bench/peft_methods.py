"""What does parameter-efficient fine-tuning save? Trainable parameters, training memory, time per step.

Fine-tunes MiniLM-L6 (``ft.load_model("minilm-l6", num_classes=5)``, offline) on BBC News
batches with each method, measured in one run on this machine:

- full fine-tuning, head only (linear probe), LoRA (r=8, query/key/value), BitFit,
  prompt tuning (20 vectors) and bottleneck adapters (64 wide, Houlsby's places);
- trainable parameters and their share;
- peak training memory: on CUDA, ``max_memory_allocated`` during training minus the
  memory before the first step (the weights); on the CPU, the process's peak resident
  memory during training minus its resident memory before the first step (Linux resets
  the peak through ``/proc/self/clear_refs``). Either way it counts gradients, optimizer
  state and activations, not the weights themselves. Each method runs in its own process,
  so one method's freed memory cannot hide another's;
- time per optimizer step (AdamW, batch 16, 128 tokens): median over the timed steps,
  after untimed warm-up steps.

    python bench/peft_methods.py              # about 3 minutes on a 2-core CPU
    python bench/peft_methods.py --quick      # fewer steps
    python bench/peft_methods.py --methods full lora
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

METHODS = ("full", "head", "lora", "bitfit", "prompt", "adapters")
DESCRIBE = {"full": "full fine-tuning", "head": "head only (linear probe)", "lora": "LoRA r=8 (q, k, v)",
            "bitfit": "BitFit (biases)", "prompt": "prompt tuning (20 vectors)", "adapters": "adapters (64 wide)"}


def apply(method: str, model):
    """Make ``model`` train the way ``method`` says (in place)."""
    import ftkit as ft
    from ftkit.tuning.adapt import add_adapters, bitfit, prompt_tuning
    from ftkit.tuning.lora import add_lora

    if method == "head":
        ft.freeze(model)
    elif method == "lora":
        add_lora(model, r=8, alpha=16)
    elif method == "bitfit":
        bitfit(model)
    elif method == "prompt":
        prompt_tuning(model, n_tokens=20)
    elif method == "adapters":
        add_adapters(model, bottleneck=64)
    return model


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in MiB, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def measure(method: str, batches: list, warmup: int, threads: int | None) -> dict:
    """One method in a fresh process: returns its row of the table."""
    import torch

    import ftkit as ft
    from ftkit.core.batches import compute_loss, forward_batch
    from ftkit.core.device import amp_dtype, autocast, pick_device, to_device

    if threads:
        torch.set_num_threads(threads)
    device = pick_device()
    torch.manual_seed(0)
    model = apply(method, ft.load_model("minilm-l6", num_classes=5)).to(device)
    ft.train_mode(model)
    optimizer = ft.make_optimizer(model, "adamw", lr=1e-4, weight_decay=0.01)
    dtype = amp_dtype(device)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        exact = _reset_peak_rss()
        base = _rss_mb("VmRSS")
    times = []
    for i, batch in enumerate(batches):
        batch = to_device(batch, device)
        start = time.perf_counter()
        with autocast(device, dtype):
            outputs, targets = forward_batch(model, batch)
            loss = compute_loss("classification", outputs, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        memory_note = "CUDA max_memory_allocated - weights"
    else:
        peak = _rss_mb("VmHWM") - base
        memory_note = "peak RSS - RSS before training" + ("" if exact else " (peak since start: upper bound)")
    return {"method": DESCRIBE[method], "trainable": trainable, "trainable %": round(100 * trainable / total, 3),
            "train memory (MB)": round(peak, 1), "s / step": round(statistics.median(times), 3),
            "_device": str(device), "_memory": memory_note, "_threads": torch.get_num_threads()}


def bbc_batches(n: int, batch_size: int) -> list:
    import ftkit as ft

    data = ft.load_dataset("bbc-news", "minilm-l6", seed=0)
    train = data.train
    return [train.collate_fn([train[i * batch_size + j] for j in range(batch_size)]) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="3 timed steps after 1 warm-up step")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 3, 1
    from ftkit.core.util import Table

    start = time.perf_counter()
    batches = bbc_batches(args.warmup + args.steps, args.batch_size)
    width = max(len(b["input_ids"][0]) for b in batches)
    rows = []
    context = mp.get_context("spawn")  # a fresh process per method: clean memory numbers
    for method in args.methods:
        with context.Pool(1) as pool:
            rows.append(pool.apply(measure, (method, batches, args.warmup, args.threads)))
        print(f"  {method}: done", flush=True)
    facts = {k: rows[0][k] for k in ("_device", "_memory", "_threads")}
    for row in rows:
        for k in facts:
            row.pop(k)
    title = (f"MiniLM-L6 (22.7M params), 5 classes, BBC News batches of {args.batch_size} x {width} tokens, AdamW; "
             f"device {facts['_device']} ({facts['_threads']} threads)")
    footer = (f"train memory: {facts['_memory']}. s / step: median of {args.steps} steps after {args.warmup} "
              f"warm-up. Whole run: {time.perf_counter() - start:.0f} s.")
    print(Table(rows, title=title, footer=footer))


if __name__ == "__main__":
    main()
