"""Self-checks for lesson 10 (checkpoints and deployment).

Q1, Q2 and Q4 ask for a prediction that the check then measures, in the lesson's offline setting:
Q1 and Q2 rerun section 2's plain training loop (glyph-resnet, 100 digits, 2 epochs of 5 steps)
with a resume that re-seeds instead of restoring the random state (Q1), or with plain SGD and a
fresh optimizer (Q2); Q4 trains section 3's seed-0 model and scores it with and without the
input normalisation. Q3 is about which file formats run code when loaded.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import torch

from ...data.catalogue import load_dataset
from ...data.labeled import few_shot
from ...models.catalogue import load_model
from ...train.evaluate import predict
from ...train.loop import fit
from ._core import _MISSING_HINT, Verdict, check_choice, missing, one_of, right, wrong

__all__ = ["q1", "q2", "q3", "q4"]

# The lesson's offline setting (lessons/10_checkpoints_and_deployment.ipynb, sections 1-3).
MODEL, DATASET = "glyph-resnet", "digits"
RUN = dict(epochs=4, lr=2e-3, batch_size=20, eval_batch_size=200, progress=False, live=False, device="cpu")


@lru_cache(maxsize=1)
def _setting():
    base = load_model(MODEL, num_classes=10)
    data = load_dataset(DATASET, base, seed=0)
    return base, data


@lru_cache(maxsize=1)
def _plain_data():
    _, data = _setting()
    few = few_shot(data.train, per_class=10, seed=0)  # section 2: 100 images, 5 steps of 20 per epoch
    x = torch.stack([few[i][0] for i in range(len(few))])
    y = torch.tensor([few[i][1] for i in range(len(few))])
    return x, y


def plain_resume(seed: int = 0, *, sgd: bool = False, restore_optimizer: bool = True,
                 random_state: str = "restore") -> bool:
    """Section 2's loop: 2 epochs unbroken vs 1 epoch, a resume, and 1 more. True when bit-identical.

    ``sgd``: plain SGD (lr 0.05, no momentum) at a constant rate instead of AdamW with one-cycle.
    ``random_state``: "restore" the shuffling generator's state, or "reseed" a fresh generator
    with the run's seed (what a script that seeds at its top does after a restart).
    """
    base, _ = _setting()
    x, y = _plain_data()

    def start(s):
        torch.manual_seed(s)
        model = copy.deepcopy(base).train()
        if sgd:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=10)
        return model, optimizer, scheduler, torch.Generator().manual_seed(s)

    def epoch(model, optimizer, scheduler, generator):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), 20):
            idx = order[i:i + 20]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()

    unbroken, *state = start(seed)
    epoch(unbroken, *state)
    epoch(unbroken, *state)
    first, opt, sched, gen = start(seed)
    epoch(first, opt, sched, gen)
    saved = (copy.deepcopy(first.state_dict()), copy.deepcopy(opt.state_dict()), sched.state_dict(), gen.get_state())
    resumed, opt2, sched2, gen2 = start(seed + 100)  # a new process
    resumed.load_state_dict(saved[0])
    if restore_optimizer:
        opt2.load_state_dict(saved[1])
    sched2.load_state_dict(saved[2])
    if random_state == "restore":
        gen2.set_state(saved[3])
    else:
        gen2 = torch.Generator().manual_seed(seed)
    epoch(resumed, opt2, sched2, gen2)
    return all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), unbroken.state_dict().values()))


def _resume_prediction(answer, why: str, hint: str, **resume) -> Verdict:
    """Judge a yes/no prediction of "bit-identical?" against ``plain_resume(0, **resume)``, measured now."""
    said = one_of(answer, ("yes", "no"))
    if isinstance(said, Verdict):
        return said
    same = plain_resume(0, **resume)
    measured = f"Measured (seed 0): the final weights were {'' if same else 'not '}bit-identical. "
    return right(measured + why) if said == ("yes" if same else "no") else wrong(measured + hint)


def q1(answer) -> Verdict:
    """Predict, then run: resume re-seeding the shuffle instead of restoring its state: bit-identical?"""
    return _resume_prediction(
        answer, random_state="reseed",
        why="A seed sets where the random stream starts; the unbroken run's second epoch drew from where the first "
            "epoch left it. Re-seeding replays the first epoch's shuffle, so save the generator's state, not just "
            "its seed.",
        hint="Which shuffle does the unbroken run use in its second epoch, and which does a generator freshly "
             "seeded with the same seed give first?")


def q2(answer) -> Verdict:
    """Predict, then run: plain SGD, constant rate, fresh optimizer on resume: bit-identical?"""
    return _resume_prediction(
        answer, sgd=True, restore_optimizer=False,
        why="Plain SGD's step is -lr * gradient: it depends on the weights and this batch only, so there is no "
            "optimizer state to lose. Momentum (a running sum of gradients) or Adam's averages would be state, and "
            "would have to be saved.",
        hint="What does optimizer.state hold for SGD without momentum? Print "
             "torch.optim.SGD(model.parameters(), lr=0.05).state_dict() after a step.")


def q3(answer) -> Verdict:
    """Which file can run code merely by being loaded?"""
    return check_choice(
        answer, "b",
        {"a": "model.safetensors with safetensors.torch.load_file",
         "b": "a torch.save pickle with torch.load(weights_only=False)",
         "c": "model.onnx with onnxruntime.InferenceSession"},
        hint="Which of these formats stores instructions to rebuild Python objects (section 4's Surprise "
             "class), and which store only numbers and a graph of standard operations?",
        why="A pickle is a program that rebuilds objects, and it may call any function while it loads; "
            "torch.load(weights_only=False) runs it all. safetensors holds a JSON header and raw numbers, ONNX a "
            "protobuf graph of standard operations: their loaders read data and call nothing from the file.")


@lru_cache(maxsize=1)
def _q4_measured() -> tuple[float, float]:
    """Test accuracy of section 3's seed-0 model with the usual inputs, and with the normalisation left out."""
    base, data = _setting()
    model = copy.deepcopy(base)
    fit(model, few_shot(data.train, per_class=20, seed=0), data.val, seed=0, **RUN)
    truth = torch.as_tensor(data.test.targets)
    normalised = float((predict(model, data.test).labels == truth).float().mean())
    t = data.test.transform
    x = torch.stack([data.test[i][0] for i in range(len(data.test))]) * t.std + t.mean  # undo the normalisation
    with torch.no_grad():
        raw = float((model.eval()(x).argmax(1) == truth).float().mean())
    return normalised, raw


def q4(answer) -> Verdict:
    """Predict, then run: the inference function forgets the normalisation: how much accuracy does it cost?"""
    if missing(answer):
        return wrong(_MISSING_HINT)
    with_norm, without = _q4_measured()
    drop = with_norm - without
    expected = "a" if drop < 0.005 else "b" if drop < 0.05 else "c" if drop > 0.20 else None
    measured = (f"Measured: test accuracy {with_norm:.1%} with the normalisation, {without:.1%} without it "
                f"({100 * drop:.1f} points). ")
    if expected is None:  # between the options: say so rather than judge
        return wrong(measured + "None of the options fits this measurement exactly; compare it with each.")
    verdict = check_choice(
        answer, expected, {"a": "none", "b": "a few points", "c": "more than 20 points"},
        hint=measured + "The network learnt its weights on inputs normalised with the card's mean and std "
                        "(section 6). What do its first BatchNorm's running statistics expect, and what do "
                        "pixels in [0, 1] give it?",
        why=measured + "In eval mode BatchNorm uses the statistics of the training inputs, so it does not "
                       "re-centre inputs on another scale: every layer after it sees values it never saw in "
                       "training. Training-serving skew fails silently: test the inference function against "
                       "the training pipeline, as section 6 does.")
    return verdict
