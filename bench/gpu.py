"""Training throughput on one GPU: ``ft.fit`` against a hand-written loop and the Hugging Face Trainer.

Prints one table, measured in one run on this machine:

- ResNet-50 at 224 x 224 (images/s; channels_last, bf16 autocast) and BERT-base at 128 tokens
  (sequences/s), full fine-tuning with AdamW (lr 1e-4, weight decay 0.01 on matrices only,
  constant LR, no clipping), the same batches and batch size for every method;
- each trained by a hand-written PyTorch loop, by ``ft.fit``, and (BERT) by ``transformers.Trainer``
  (bf16=True, no evaluation, no saving, its default logging), twice: with its default, the fused
  AdamW (the implementation ``ft.fit`` and the hand loop use), and with ``optim="adamw_torch"``;
- model FLOPs utilisation (MFU) against this GPU's bf16 matmul rate, measured here by timing a
  large bf16 matmul (8192 x 8192 x 8192); and peak memory (``torch.cuda.max_memory_allocated``
  during the run, less the synthetic data kept on the GPU);
- with ``--compile``: the same with ``torch.compile`` (``model.compile()``; the Trainer's
  ``torch_compile=True``), and its gain over eager.

Training FLOPs. For MFU the script counts the forward pass of one example with
``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add, as the matmul rate is
counted) and takes training as 3 x forward (the backward pass costs about twice the forward).
For ResNet-50 at 224 px that is 3 x 8.2 GFLOP per image: the usual "4.1 GFLOPs" counts
multiply-adds, so the brief's 3 x 4.1 GFLOP would halve the MFU. For BERT the column
"MFU 6ND" uses 6 x parameters (embeddings included) x tokens, the usual rule for transformers
(Kaplan et al. 2020); it counts the embedding lookups as matmuls and so reads higher than the
counted MFU. Both FLOP counts go into the JSON.

What is and is not measured. The models have random weights (``resnet50(weights=None)``,
``BertForSequenceClassification(BertConfig())``): throughput does not depend on the values.
The data are random tensors already on the GPU (a few distinct batches, cycled), so no
input pipeline is timed. Each method runs ``--warmup`` untimed steps (cuDNN's algorithm
search, torch.compile's compilation, the allocator's first requests) and then ``--steps``
timed steps, between two ``torch.cuda.synchronize()`` calls, from the end of the last warm-up
step to the end of the last step.

Partial results: each row is printed and saved (``bench/results/gpu-<time>.json``) as soon
as it is measured, and a measurement that would end after ``--budget`` seconds (judged by the
longest one like it so far) is skipped and recorded as such, so a run under a time limit keeps
what it finished.

    python bench/gpu.py                   # one H100/H200: an estimate of 2-3 minutes (not yet run on one)
    python bench/gpu.py --compile         # adds the torch.compile rows (minutes more; --budget keeps it under 8)
    python bench/gpu.py --smoke           # tiny models on the CPU, seconds (tests/test_bench.py)
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from _record import Record  # noqa: E402

# Only _record is wanted from this folder: take it off the path again, so no script here shadows a package,
# and put the checkout's root on it, so that a bare copy of the tree (a rented GPU machine) imports its ftkit.
sys.path[:] = [os.path.dirname(BENCH)] + [p for p in sys.path if os.path.abspath(p or os.curdir) != BENCH]

import ftkit as ft  # noqa: E402

LR, WEIGHT_DECAY = 1e-4, 0.01
QUOTED_GFLOPS = {"resnet18": 1.8, "resnet50": 4.1}  # forward at 224 px as usually quoted (multiply-adds)


@dataclass
class Workload:
    """One model and its synthetic batches; everything a method needs to train it."""

    name: str  # e.g. "resnet50 224px"
    unit: str  # what one example is: "images" or "sequences"
    batch_size: int
    steps: int  # timed steps per method
    build: Callable[[], nn.Module]  # a fresh model with the same initial weights every call
    batches: list  # distinct batches on the device, cycled
    flops_counted: float  # training FLOPs per example: 3 x the counted forward pass
    flops_formula: float  # training FLOPs per example by the usual rule (see the module notes)
    formula: str  # that rule, in words


class Cycle(Dataset):
    """``steps`` ready-made batches, cycling through a few distinct ones (a DataLoader with batch_size=None)."""

    def __init__(self, batches: list, steps: int):
        self.batches, self.steps = batches, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int):
        return self.batches[i % len(self.batches)]


def _as_is(batch):
    return batch


def loader(work: Workload, steps: int) -> DataLoader:
    """The same batches, in the same order, for every method."""
    return DataLoader(Cycle(work.batches, steps), batch_size=None, collate_fn=_as_is)


class StepTimer:
    """Wall time from the end of step ``warmup`` to the end of step ``warmup + steps``, the device synchronised."""

    def __init__(self, device: torch.device, warmup: int, steps: int):
        self.device, self.warmup, self.last = device, warmup, warmup + steps
        self.start = self.seconds = None

    def mark(self, step: int) -> None:
        """Call after optimizer step ``step`` (counted from 1)."""
        if step == self.warmup or step == self.last:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            if step == self.warmup:
                self.start = now
            else:
                self.seconds = now - self.start

    # ft.fit calls on_step(history, model) after each optimizer step; the callback only reads.
    def on_step(self, history, model) -> None:
        self.mark(len(history.steps))


# --- the three ways to train -------------------------------------------------------------------


def decay_groups(model: nn.Module) -> list[dict]:
    """AdamW's two groups as a careful PyTorch user writes them: weight decay on matrices, none on 1-D params."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": WEIGHT_DECAY},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def forward_loss(model: nn.Module, batch) -> torch.Tensor:
    if isinstance(batch, dict):  # a Hugging Face model: logits, and the loss computed here as ft.fit does
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits, batch["labels"])
    x, y = batch
    return F.cross_entropy(model(x), y)


def run_hand(work: Workload, model: nn.Module, device: torch.device, timer: StepTimer, steps: int) -> dict:
    """The reference: the loop a PyTorch user writes, with the precision and memory format ft.fit uses."""
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(decay_groups(model), lr=LR, fused=True)  # fit's AdamW: the fused kernel
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    model.train()
    for step, batch in enumerate(loader(work, steps), start=1):
        with ctx:
            loss = forward_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timer.mark(step)
    return {"final_loss": float(loss.detach())}


def run_fit(work: Workload, model: nn.Module, device: torch.device, timer: StepTimer, steps: int) -> dict:
    """``ft.fit`` on the same batches: one epoch of ``steps`` batches, amp (bf16 on CUDA), constant LR."""
    history = ft.fit(model, loader(work, steps), epochs=1, batch_size=work.batch_size, lr=LR,
                     weight_decay=WEIGHT_DECAY, schedule="constant", device=str(device), progress=False,
                     live=False, callbacks=[timer])
    info = history.info
    return {"final_loss": history.steps[-1]["loss"], "amp": info.get("amp"), "path": info.get("path"),
            "param_groups": len(info.get("layer_lrs", {}))}


def run_trainer(work: Workload, model: nn.Module, device: torch.device, timer: StepTimer, steps: int, *,
                optim: str | None = None, compile: bool = False) -> dict:
    """``transformers.Trainer`` on the same batches: bf16 on CUDA, no evaluation, no saving, default logging."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    batches = loader(work, steps)

    class SameBatches(Trainer):
        # The Trainer's own loader would index the GPU tensors one example at a time; this hands it
        # the ready-made batches, through accelerate as its own loader goes.
        def get_train_dataloader(self):
            return self.accelerator.prepare(batches)

    class Timed(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            timer.mark(state.global_step)

    extra = {} if optim is None else {"optim": optim}
    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(
            output_dir=folder, per_device_train_batch_size=work.batch_size, max_steps=steps, learning_rate=LR,
            weight_decay=WEIGHT_DECAY, lr_scheduler_type="constant", max_grad_norm=0.0,  # no clipping, as the others
            bf16=device.type == "cuda", use_cpu=device.type != "cuda", eval_strategy="no", save_strategy="no",
            report_to="none", disable_tqdm=True, torch_compile=compile, seed=0, **extra)
        trainer = SameBatches(model=model, args=args, callbacks=[Timed()])
        trainer.remove_callback(PrinterCallback)  # the final metrics line, printed after the timed steps
        output = trainer.train()
        optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
        info = {"final_loss": output.training_loss, "optim": str(args.optim.value if hasattr(args.optim, "value")
                                                                 else args.optim),
                "fused": bool(optimizer.defaults.get("fused"))}
        del trainer
    return info


# --- the workloads -------------------------------------------------------------------------------


def counted_training_flops(model: nn.Module, example: Any) -> float:
    """3 x the forward FLOPs of one example, counted by torch (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(**example) if isinstance(example, dict) else model(example)
    model.train()
    return 3.0 * counter.get_total_flops()


def resnet(args, device: torch.device) -> Workload:
    import torchvision

    arch, size, classes = ("resnet18", 32, 10) if args.smoke else ("resnet50", 224, 1000)
    batch = args.batch_images or (8 if args.smoke else 256)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return getattr(torchvision.models, arch)(weights=None, num_classes=classes)

    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.distinct):
        x = torch.randn(batch, 3, size, size, generator=generator)
        y = torch.randint(0, classes, (batch,), generator=generator)
        memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        batches.append((x.to(device, memory_format=memory), y.to(device)))
    counted = counted_training_flops(build(), torch.zeros(1, 3, size, size))
    quoted = QUOTED_GFLOPS[arch]
    formula = 3 * quoted * 1e9 * (size / 224) ** 2  # convolutions scale with the pixels
    return Workload(f"{arch} {size}px", "images", batch, args.steps or (3 if args.smoke else 50), build, batches,
                    counted, formula,
                    f"3 x {quoted} GFLOP x images (the quoted forward count, in multiply-adds)")


def bert(args, device: torch.device) -> Workload:
    from transformers import BertConfig, BertForSequenceClassification

    if args.smoke:
        config = BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64)
        tokens, name = 16, "tiny-bert"
    else:
        config, tokens, name = BertConfig(), 128, "bert-base"
    batch = args.batch_tokens or (4 if args.smoke else 64)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return BertForSequenceClassification(config)  # 2 labels (BertConfig's default)

    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.distinct):
        batches.append({"input_ids": torch.randint(0, config.vocab_size, (batch, tokens), generator=generator),
                        "attention_mask": torch.ones(batch, tokens, dtype=torch.long),
                        "labels": torch.randint(0, config.num_labels, (batch,), generator=generator)})
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    model = build()
    params = sum(p.numel() for p in model.parameters())
    one = {"input_ids": batches[0]["input_ids"][:1].cpu(), "attention_mask": batches[0]["attention_mask"][:1].cpu()}
    counted = counted_training_flops(model, one)
    return Workload(f"{name} {tokens} tokens", "sequences", batch, args.steps or (3 if args.smoke else 100), build,
                    batches, counted, 6.0 * params * tokens,
                    f"6 x {params / 1e6:.1f}M parameters x {tokens} tokens")


# --- measuring ------------------------------------------------------------------------------------


def matmul_tflops(device: torch.device, smoke: bool) -> tuple[float, str]:
    """The device's measured matmul rate (TFLOP/s): bf16 on CUDA, fp32 on the CPU (the precision each trains in)."""
    n, dtype, iters = (512, torch.float32, 4) if smoke or device.type != "cuda" else (8192, torch.bfloat16, 20)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    rates = []
    for repeat in range(6):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            c = a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if repeat > 0:  # the first is warm-up (cuBLAS's heuristics, clocks ramping up)
            rates.append(2 * n**3 * iters / (time.perf_counter() - start) / 1e12)
    del a, b, c
    return max(rates), f"{str(dtype).replace('torch.', '')} {n}x{n}x{n}"


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure(work: Workload, method: str, run: Callable, device: torch.device, args, peak: float) -> dict:
    """Train a fresh model with ``run``; throughput over the timed steps, MFU, peak memory."""
    steps = args.warmup + work.steps
    free(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0  # the synthetic data
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = work.build()
    timer = StepTimer(device, args.warmup, work.steps)
    start = time.perf_counter()
    info = run(work, model, device, timer, steps)
    call = time.perf_counter() - start
    if timer.seconds is None:
        raise RuntimeError(f"{method}: the timer saw no step {timer.last}; did the run stop early?")
    per_s = work.batch_size * work.steps / timer.seconds
    row = {"workload": work.name, "method": method, "unit": work.unit, "batch_size": work.batch_size,
           "warmup_steps": args.warmup, "timed_steps": work.steps, "seconds": timer.seconds,
           "ms_per_step": 1000 * timer.seconds / work.steps, "per_s": per_s,
           "tflops": per_s * work.flops_counted / 1e12, "mfu": per_s * work.flops_counted / 1e12 / peak,
           "mfu_formula": per_s * work.flops_formula / 1e12 / peak,
           "peak_memory_gib": ((torch.cuda.max_memory_allocated(device) - base) / 2**30
                               if device.type == "cuda" else None),
           "call_seconds": call, **info}
    del model
    free(device)
    return row


def print_header(device: torch.device, peak: float, what: str) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; measured matmul rate {peak:.4g} TFLOP/s ({what}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    print(f"{'workload':<22} {'method':<32} {'per s':>9} {'ms/step':>8} {'TFLOP/s':>8} {'MFU':>6} "
          f"{'MFU 6ND':>7} {'peak GiB':>8}", flush=True)


def print_row(row: dict) -> None:
    if row.get("skipped"):
        print(f"{row['workload']:<22} {row['method']:<32} skipped: {row['skipped']}", flush=True)
        return
    memory = f"{row['peak_memory_gib']:8.2f}" if row["peak_memory_gib"] is not None else f"{'-':>8}"
    formula = f"{100 * row['mfu_formula']:6.1f}%" if row["unit"] == "sequences" else f"{'-':>7}"
    print(f"{row['workload']:<22} {row['method']:<32} {row['per_s']:9.1f} {row['ms_per_step']:8.2f} "
          f"{row['tflops']:8.2f} {100 * row['mfu']:5.1f}% {formula} {memory}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models, few steps, any device (a test)")
    parser.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per method (default 50 for ResNet, 100 for BERT; smoke 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10; smoke 2)")
    parser.add_argument("--distinct", type=int, default=4, help="distinct synthetic batches, cycled")
    parser.add_argument("--batch-images", type=int, default=None, help="ResNet batch (default 256; smoke 8)")
    parser.add_argument("--batch-tokens", type=int, default=None, help="BERT batch (default 64; smoke 4)")
    parser.add_argument("--only", choices=("resnet", "bert"), default=None, help="one workload")
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds by which the run should end: a measurement that would end later (judged by the "
                             "longest one like it so far) is skipped (default 420: done in under 8 minutes)")
    parser.add_argument("--out", default=None, help="folder for the JSON results (default bench/results)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 with --smoke, where a shared machine's other processes "
                             "can make 2 threads 20 times slower than 1; else torch's choice)")
    args = parser.parse_args(argv)
    if args.threads or args.smoke:
        torch.set_num_threads(args.threads or 1)
    args.warmup = args.warmup or (2 if args.smoke else 10)
    began = time.perf_counter()

    device = ft.pick_device()
    if device.type != "cuda" and not args.smoke:
        parser.error("no CUDA GPU here: this benchmark is for a GPU. On the CPU, run it with --smoke.")
    record = Record("gpu", vars(args), out=args.out)
    peak, what = matmul_tflops(device, args.smoke)
    record.note(matmul_tflops=peak, matmul=what)
    print_header(device, peak, what)

    builders = [w for w in (resnet, bert) if args.only in (None, w.__name__)]
    plans = []  # (workload builder, method, run): eager first, the compiled rows after them
    for compiled in (False, True) if args.compile else (False,):
        for builder in builders:
            tag = " + compile" if compiled else ""
            plans.append((builder, f"hand loop{tag}", _compiled(run_hand, compiled)))
            plans.append((builder, f"ft.fit{tag}", _compiled(run_fit, compiled)))
            if builder is bert:
                for optim, label in (("adamw_torch", "adamw_torch"), (None, "default (fused)")):
                    plans.append((builder, f"HF Trainer {label}{tag}", partial(run_trainer, optim=optim,
                                                                               compile=compiled)))

    current: tuple[Callable, Workload] | None = None  # one workload's data on the device at a time
    rows, took = [], {}  # took: the longest measurement so far per (workload, compiled), to predict the next
    for builder, method, run in plans:
        kind = (builder, method.endswith(" + compile"))
        elapsed = time.perf_counter() - began
        if elapsed + took.get(kind, 0.0) > args.budget:  # it would end after the budget: keep what is done
            name = current[1].name if current is not None and current[0] is builder else builder.__name__
            row = {"workload": name, "method": method,
                   "skipped": f"time budget: {elapsed:.0f} s gone, a measurement like it took "
                              f"{took.get(kind, 0.0):.0f} s, budget {args.budget:.0f} s"}
        else:
            if current is None or current[0] is not builder:
                current = None
                free(device)  # the last workload's batches
                current = (builder, builder(args, device))
                print(f"-- {current[1].name}, batch {current[1].batch_size}: training FLOPs per example "
                      f"{current[1].flops_counted / 1e9:.3g} G counted (3 x forward); "
                      f"{current[1].flops_formula / 1e9:.3g} G by {current[1].formula}", flush=True)
            start = time.perf_counter()
            row = measure(current[1], method, run, device, args, peak)
            took[kind] = max(took.get(kind, 0.0), time.perf_counter() - start)
        rows.append(row)
        record.add(row)
        print_row(row)

    ratios = summarise(rows)
    path = record.finish(ratios=ratios, seconds=time.perf_counter() - began)
    print(f"results: {path}", flush=True)


def _compiled(run: Callable, compiled: bool) -> Callable:
    """``run`` on the model compiled in place (``nn.Module.compile``: the module keeps its class and names)."""
    if not compiled:
        return run

    def compiled_run(work, model, device, timer, steps):
        model.compile()
        return run(work, model, device, timer, steps)

    return compiled_run


def summarise(rows: list[dict]) -> dict:
    """Throughput ratios: ft.fit against the others, and compiled against eager."""
    measured = {(r["workload"], r["method"]): r["per_s"] for r in rows if not r.get("skipped")}
    ratios = {}
    for (work, method), per_s in measured.items():
        tag = " + compile" if method.endswith(" + compile") else ""
        base = method[:-len(tag)] if tag else method
        if base == "ft.fit":
            for other in ("hand loop", "HF Trainer adamw_torch", "HF Trainer default (fused)"):
                if (work, other + tag) in measured:
                    # a time ratio, as overhead.py reports: ft.fit's seconds per step over the other's
                    name = f"{work}: ft.fit{tag} / {other}{tag} (time per step)"
                    ratios[name] = measured[(work, other + tag)] / per_s
        if tag and (work, base) in measured:
            ratios[f"{work}: {base} compile gain (throughput)"] = per_s / measured[(work, base)]
    if ratios:
        print("\nratios (time per step: below 1 means ft.fit is faster; compile gain: above 1 means faster)")
        for name, value in ratios.items():
            print(f"  {name:<80} {value:6.3f}", flush=True)
    return ratios


if __name__ == "__main__":
    main()
