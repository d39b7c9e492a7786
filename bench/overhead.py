"""What does ``ft.fit`` cost over a hand-written loop and the Hugging Face Trainer; what does the feature cache save?

Prints, measured in one run on this machine:
1. the ratio of ``ft.fit``'s time per training step to a plain PyTorch loop's, on the same
   model, data, batch size, optimizer and learning rate (target: <= 1.05);
2. the speed-up of the feature cache for a 5-epoch linear probe of a frozen backbone:
   the same ``ft.fit`` call with ``feature_cache=False``, with the cache computed in the call,
   and with the features kept from an earlier call on the same backbone and data (the case
   of every probe after the first: other seeds, learning rates, a lesson run again); target >= 10x;
3. full fine-tuning of MiniLM-L6 on 40 BBC News articles (8 per class, 128 tokens), 4 epochs of
   batch 8: ``ft.fit`` against a hand-written loop (target <= 1.03) and ``transformers.Trainer``
   (target <= 0.9). All three see the same batches in the same order (the Trainer is handed
   the DataLoader ``ft.fit`` builds, through accelerate as its own would go; a forward hook
   checks the order), use torch's fused AdamW kernel at lr 1e-4 with weight decay 0.01 on the
   same tensors (matrices and embeddings; no decay on biases and LayerNorm, checked), a constant
   LR, no clipping, no evaluation and no saving. The fused kernel is ``ft.fit``'s optimizer and
   the Trainer's default (``adamw_torch_fused`` in transformers 5.24 with torch >= 2.8, on the
   CPU too); the Trainer with ``optim="adamw_torch"``, the per-tensor loop, is measured beside
   it, to show what the fused step is worth.

Runs alternate (reference, ftkit, reference, ftkit, ...; in section 3 each round starts with the
next method) and the medians are compared, so a slow moment on the machine hits both sides alike.
CPU time (``time.process_time``) is printed beside wall time: on a machine that other processes
share, it is the steadier of the two. Each run's numbers, the medians and the
machine go into ``bench/results/overhead-<time>.json`` (``--out`` for another folder).

On a shared 2-core machine, use ``--threads 1``: with other processes running, two torch
threads wait on each other and a step can take several times longer, at random.

    python bench/overhead.py                      # about 10 minutes on a 2-core CPU
    python bench/overhead.py --quick --threads 1  # fewer repeats
    python bench/overhead.py --only text          # section 3 alone
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from _record import Record  # noqa: E402

# Only _record is wanted from this folder: take it off the path again, so no script here shadows a package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != BENCH]

import ftkit as ft  # noqa: E402


def hand_written(model: nn.Module, train, epochs: int, batch_size: int, lr: float, seed: int) -> tuple[float, int]:
    """The reference: the loop a PyTorch user writes, with the same optimizer and batches as fit.

    Returns the seconds spent in the epoch loops (set-up excluded, as in fit's History) and the steps.
    """
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01,
                                  fused=True)  # fit's AdamW: the fused kernel
    model.train()
    steps, seconds = 0, 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        seconds += time.perf_counter() - start
    return seconds, steps


def time_per_step(args) -> dict[str, float]:
    """Median seconds per step in the epoch loops, and for whole calls (set-up included)."""
    # A mid-sized CNN at 64x64: each step does real work, as in fine-tuning on a laptop.
    card_model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=64)
    data = ft.load_dataset("digits", card_model, seed=0)
    train = data.train.subset(range(args.examples))
    times: dict[str, list[float]] = {k: [] for k in ("ref_step", "fit_step", "ref_call", "fit_call", "ref_cpu",
                                                     "fit_cpu")}
    for repeat in range(args.repeats):
        torch.manual_seed(0)
        model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=64)
        start, cpu = time.perf_counter(), time.process_time()
        seconds, steps = hand_written(model, train, args.epochs, 32, 1e-3, seed=repeat)
        times["ref_cpu"].append((time.process_time() - cpu) / steps)
        times["ref_call"].append((time.perf_counter() - start) / steps)
        times["ref_step"].append(seconds / steps)

        torch.manual_seed(0)
        model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=64)
        start, cpu = time.perf_counter(), time.process_time()
        history = ft.fit(model, train, epochs=args.epochs, batch_size=32, lr=1e-3, schedule="constant",
                         seed=repeat, progress=False)
        steps = len(history.steps)
        times["fit_cpu"].append((time.process_time() - cpu) / steps)
        times["fit_call"].append((time.perf_counter() - start) / steps)
        times["fit_step"].append(sum(history.metric("time_s")) / steps)
    return {**{k: statistics.median(v) for k, v in times.items()}, "runs": times}


def feature_cache_speedup(args) -> dict:
    """Seconds for the same 5-epoch linear probe: no cache, cache computed in the call, cache kept from a call before."""
    probe = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=args.probe_size)
    data = ft.load_dataset("digits", probe, seed=0)
    times = {"none": [], "cold": [], "warm": []}
    for _ in range(args.repeats):
        for kind in ("none", "cold", "warm"):
            if kind == "cold":
                ft.clear_feature_cache()  # features computed inside this call
            torch.manual_seed(0)
            model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=args.probe_size)
            ft.freeze(model)
            start = time.perf_counter()
            history = ft.fit(model, data.train, data.val, epochs=5, lr=1e-3, batch_size=64,
                             feature_cache=kind != "none", progress=False)
            times[kind].append(time.perf_counter() - start)
            expected = {"none": None, "cold": "computed", "warm": "reused"}[kind]
            assert history.info.get("features", {}).get("train") == expected, history.info
    out = {k: statistics.median(v) for k, v in times.items()}
    out["sizes"] = f"train {len(data.train)} / val {len(data.val)} examples"
    out["runs"] = times
    return out


# --- 3. MiniLM-L6 on BBC News: ft.fit, a hand-written loop and the Hugging Face Trainer ------------

TEXT_LR, TEXT_DECAY, TEXT_BATCH, TEXT_EPOCHS = 1e-4, 0.01, 8, 4


def text_loader(train, seed: int, device: torch.device) -> torch.utils.data.DataLoader:
    """The batches fit makes (``make_loader``): shuffled by a generator seeded with ``seed``, padded per batch."""
    return torch.utils.data.DataLoader(train, batch_size=TEXT_BATCH, shuffle=True, collate_fn=train.collate_fn,
                                       generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda")


def text_hand(model: nn.Module, train, device: torch.device, seed: int) -> dict:
    """The loop a PyTorch user writes: fused AdamW with decay on matrices only (as nanoGPT does), bf16 on CUDA."""
    torch.manual_seed(seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.ndim > 1], "weight_decay": TEXT_DECAY},
                                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}], lr=TEXT_LR,
                                  fused=True)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    loader = text_loader(train, seed, device)
    steps, seconds = 0, 0.0
    for _ in range(TEXT_EPOCHS):
        start = time.perf_counter()
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with ctx:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss = nn.functional.cross_entropy(logits, batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        seconds += time.perf_counter() - start
    names = {id(p): n for n, p in model.named_parameters()}
    return {"loop_s": seconds, "steps": steps, "decayed": _decayed(optimizer, names)}


def text_fit(model: nn.Module, train, device: torch.device, seed: int) -> dict:
    history = ft.fit(model, train, epochs=TEXT_EPOCHS, batch_size=TEXT_BATCH, lr=TEXT_LR, weight_decay=TEXT_DECAY,
                     schedule="constant", seed=seed, device=str(device), progress=False, live=False)
    decayed = {n for g in ft.param_groups(model, TEXT_LR, TEXT_DECAY) if g["weight_decay"] > 0 for n in g["names"]}
    return {"loop_s": sum(history.metric("time_s")), "steps": len(history.steps), "decayed": decayed}


def text_trainer(model: nn.Module, train, device: torch.device, seed: int, optim: str | None) -> dict:
    """``transformers.Trainer``, its defaults but for what the others do too; ``optim=None``: its default optimizer."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    batches = text_loader(train, seed, device)
    epoch_seconds = []

    class SameBatches(Trainer):
        def get_train_dataloader(self):  # fit's batches, prepared by accelerate as the Trainer's own loader is
            return self.accelerator.prepare(batches)

    class EpochTimes(TrainerCallback):  # the epochs' loops, as fit's History times them
        def on_epoch_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            epoch_seconds.append(time.perf_counter() - self.start)

    extra = {} if optim is None else {"optim": optim}
    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(
            output_dir=folder, per_device_train_batch_size=TEXT_BATCH, num_train_epochs=TEXT_EPOCHS,
            learning_rate=TEXT_LR, weight_decay=TEXT_DECAY, lr_scheduler_type="constant",
            max_grad_norm=0.0,  # no clipping, as the others (the Trainer still computes the norm each step)
            eval_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True, seed=seed,
            # accelerate would swap the loader's sampler for one it reseeds each epoch (seed + epoch): keep fit's order
            accelerator_config={"use_seedable_sampler": False},
            bf16=device.type == "cuda", use_cpu=device.type != "cuda", **extra)
        trainer = SameBatches(model=model, args=args, callbacks=[EpochTimes()])
        trainer.remove_callback(PrinterCallback)  # the one line of final metrics, after the loop
        output = trainer.train()
        optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
        names = {id(p): n for n, p in model.named_parameters()}
        info = {"loop_s": sum(epoch_seconds), "steps": output.global_step, "decayed": _decayed(optimizer, names),
                "optim": str(getattr(args.optim, "value", args.optim)), "fused": bool(optimizer.defaults.get("fused"))}
        del trainer, optimizer
    return info


def _decayed(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> set[str]:
    return {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}


TEXT_METHODS = {
    "hand": ("hand-written loop", text_hand),
    "fit": ("ft.fit", text_fit),
    "trainer_fused": ("HF Trainer, default optim (fused)", lambda *a: text_trainer(*a, optim=None)),
    "trainer": ("HF Trainer, optim=adamw_torch", lambda *a: text_trainer(*a, optim="adamw_torch")),
}


def text_overhead(args) -> dict:
    """Seconds per step for each method on the same batches, median of alternating runs; checks they match."""
    device = ft.pick_device()
    base = ft.load_model("minilm-l6", num_classes=5)
    data = ft.load_dataset("bbc-news", base, seed=0, max_length=128)
    train = ft.few_shot(data.train, per_class=8, seed=0)
    methods = [m for m in TEXT_METHODS if m != "trainer" or not args.skip_unfused]
    runs = {m: [] for m in methods}
    same_order, decayed = [], {}
    for repeat in range(args.text_repeats):
        seen = {}
        # Each round starts with the next method, so none always runs first (or right after the same one).
        for method in methods[repeat % len(methods):] + methods[:repeat % len(methods)]:
            model = copy.deepcopy(base)  # the same initial weights (and new head) for every run
            inputs = seen[method] = []  # what the model reads, step by step: the batches and their order
            hook = model.register_forward_pre_hook(
                lambda module, a, kw, inputs=inputs: inputs.append(kw["input_ids"][:, :32].detach().cpu()),
                with_kwargs=True)
            start, cpu = time.perf_counter(), time.process_time()
            out = TEXT_METHODS[method][1](model, train, device, repeat)
            call, cpu = time.perf_counter() - start, time.process_time() - cpu
            hook.remove()
            steps = out["steps"]
            decayed[method] = sorted(out.pop("decayed"))
            runs[method].append({"step": out.pop("loop_s") / steps, "call": call / steps, "cpu": cpu / steps, **out})
            print(f"   round {repeat + 1}, {TEXT_METHODS[method][0]:<34} {1000 * runs[method][-1]['step']:7.1f} "
                  "ms/step "
                  f"in the loop, {1000 * call / steps:7.1f} whole call, {1000 * cpu / steps:7.1f} CPU ({steps} steps)",
                  flush=True)
            del model
        reference = seen["hand"]
        same_order.append({m: len(s) == len(reference) and all(torch.equal(a, b) for a, b in zip(s, reference))
                           for m, s in seen.items()})
    medians = {m: {k: statistics.median(r[k] for r in runs[m]) for k in ("step", "call", "cpu")} for m in methods}
    return {"medians": medians, "runs": runs, "same_batches_in_order": all(all(r.values()) for r in same_order),
            "same_order_as_hand_loop": same_order,
            "same_weight_decay_split": all(d == decayed["hand"] for d in decayed.values()),
            "decayed_tensors": len(decayed["hand"]), "examples": len(train), "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and examples (1 repeat, 320 examples, 2 text rounds) unless given")
    parser.add_argument("--repeats", type=int, default=None, help="alternating runs of sections 1 and 2 (3)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--examples", type=int, default=None, help="training examples in section 1 (960)")
    parser.add_argument("--probe-size", type=int, default=64)
    parser.add_argument("--text-repeats", type=int, default=None, help="alternating rounds of section 3 (3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", choices=("step", "cache", "text"), nargs="+", default=None,
                        help="sections to run (default: all three)")
    parser.add_argument("--skip-cache", action="store_true", help="leave out section 2 (the feature cache)")
    parser.add_argument("--skip-unfused", action="store_true",
                        help="section 3 without the Trainer's per-tensor AdamW (optim=adamw_torch)")
    parser.add_argument("--out", default=None, help="folder for the JSON results (default bench/results)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = {"repeats": 1, "examples": 320, "text_repeats": 2} if args.quick else {}
    for name, default in {"repeats": 3, "examples": 960, "text_repeats": 3}.items():
        if getattr(args, name) is None:
            setattr(args, name, quick.get(name, default))
    sections = set(args.only or ("step", "cache", "text")) - ({"cache"} if args.skip_cache else set())
    record = Record("overhead", vars(args), out=args.out)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device: {ft.pick_device()}")

    if "step" in sections:
        t = time_per_step(args)
        record.note(step=t)
        print("\n1. time per step, resnet18 at 64x64 on digits, batch 32, AdamW (median of "
              f"{args.repeats} alternating runs)")
        print(f"   in the epoch loop:  hand-written {1000 * t['ref_step']:7.1f} ms/step, "
              f"ft.fit {1000 * t['fit_step']:7.1f} ms/step")
        print(f"   ratio ft.fit / hand-written = {t['fit_step'] / t['ref_step']:.3f}   (target <= 1.05)")
        print(f"   whole calls, set-up included: hand-written {1000 * t['ref_call']:7.1f} ms/step, "
              f"ft.fit {1000 * t['fit_call']:7.1f} ms/step, ratio {t['fit_call'] / t['ref_call']:.3f}")
        print(f"   CPU time of whole calls (robust when other processes share the machine): hand-written "
              f"{1000 * t['ref_cpu']:7.1f} ms/step, ft.fit {1000 * t['fit_cpu']:7.1f} ms/step, "
              f"ratio {t['fit_cpu'] / t['ref_cpu']:.3f}")

    if "cache" in sections:
        t = feature_cache_speedup(args)
        record.note(cache=t)
        print(f"\n2. 5-epoch linear probe of a frozen resnet18 at {args.probe_size}x{args.probe_size} on digits "
              f"({t['sizes']}, validation every epoch; median of {args.repeats})")
        print(f"   without the feature cache:                      {t['none']:6.2f} s")
        print(f"   cache computed in the call (first probe):       {t['cold']:6.2f} s   speed-up {t['none'] / t['cold']:5.1f}x")
        print(f"   cache kept from an earlier call (next probes):  {t['warm']:6.2f} s   speed-up {t['none'] / t['warm']:5.1f}x"
              "   (target >= 10x)")
        print("   A first call is bounded by about the number of epochs: without the cache each epoch runs the"
              " backbone once; with it the call runs it once.")

    if "text" in sections:
        print(f"\n3. full fine-tuning of minilm-l6 on 40 bbc-news articles, 128 tokens, batch {TEXT_BATCH}, "
              f"{TEXT_EPOCHS} epochs, AdamW lr {TEXT_LR}, constant LR ({args.text_repeats} alternating rounds)",
              flush=True)
        t = text_overhead(args)
        medians, runs = t["medians"], t["runs"]
        others = [k for k in medians if k != "fit"]
        label = {k: f"ft.fit / {TEXT_METHODS[k][0]}" for k in others}
        ratios = {k: {x: medians["fit"][x] / medians[k][x] for x in ("step", "call", "cpu")} for k in others}
        # The same ratios within each round (runs next to each other in time): their spread shows the noise.
        paired = {k: {x: [f[x] / o[x] for f, o in zip(runs["fit"], runs[k])] for x in ("step", "cpu")} for k in others}
        record.note(text={**t, "ratios": {label[k]: v for k, v in ratios.items()},
                          "ratios_per_round": {label[k]: v for k, v in paired.items()}})
        differ = sorted({TEXT_METHODS[k][0] for r in t["same_order_as_hand_loop"] for k, same in r.items() if not same})
        same = "yes" if not differ else "NO, not in " + ", ".join(differ)
        print(f"   same batches in the same order for all: {same}; "
              f"weight decay on the same {t['decayed_tensors']} tensors: "
              f"{'yes' if t['same_weight_decay_split'] else 'NO'}")
        print(f"   {'median ms/step':<36} {'in the loop':>11} {'whole call':>11} {'CPU time':>11}")
        for k, med in medians.items():
            print(f"   {TEXT_METHODS[k][0]:<36} {1000 * med['step']:11.1f} {1000 * med['call']:11.1f} "
                  f"{1000 * med['cpu']:11.1f}")
        targets = {"hand": "(target <= 1.03)", "trainer_fused": "(target <= 0.9)"}
        for k, ratio in ratios.items():
            print(f"   ratio {label[k]:<45} {ratio['step']:.3f} in the loop, {ratio['call']:.3f} whole calls, "
                  f"{ratio['cpu']:.3f} CPU time   {targets.get(k, '')}")
        print("   the same ratios in each round (in the loop | CPU time):")
        for k, per_round in paired.items():
            print(f"     {label[k]:<45} " + " ".join(f"{v:.3f}" for v in per_round["step"]) + " | "
                  + " ".join(f"{v:.3f}" for v in per_round["cpu"]))
        for key, name in (("step", "in the loop"), ("cpu", "CPU time")):
            spread = {TEXT_METHODS[k][0]: [round(1000 * r[key]) for r in v] for k, v in runs.items()}
            print(f"   every round, ms/step {name}: {spread}")

    path = record.finish()
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
