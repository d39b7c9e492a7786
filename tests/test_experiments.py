"""Strategies, compare and data_efficiency on a tiny CNN and sklearn's 8x8 digits (seconds in all)."""
import json

import pytest
import torch
from torch import nn

import ftkit as ft
import ftkit.experiments.analysis
import ftkit.models.catalogue
import ftkit.experiments.compare
import ftkit.experiments.strategies
from ftkit.experiments.compare import compare, data_efficiency, sweep
from ftkit.experiments.results import ResultTable
from ftkit.experiments.strategies import (
    Phase,
    Strategy,
    bitfit,
    discriminative,
    full,
    gradual_unfreeze,
    l2sp,
    linear_probe,
    lora,
    partial,
    run_strategy,
    scratch,
    strategy_table,
    two_phase,
)
from ftkit.models.catalogue import register_source

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "test-experiments-cnn"
EPOCHS = dict(epochs=2, batch_size=16)


class TinyCNN(nn.Module):
    """Three layer groups (conv, body, head), like a real backbone in miniature."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.ReLU())
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(self.body(self.conv(x)))


def _load_tiny(card, pretrained):
    # "Pre-trained" weights: a fixed draw, the same every time; from scratch: the caller's RNG.
    state = torch.random.get_rng_state()
    if pretrained:
        torch.manual_seed(1234)
    model = TinyCNN(10)
    if pretrained:
        torch.random.set_rng_state(state)  # the new head below is drawn from the caller's seed
    if card.num_outputs is not None:
        model.fc = nn.Linear(32, card.num_outputs)
    return model


def register_tiny(name=NAME):
    """Register the tiny CNN as a catalogue model (once per test session)."""
    try:
        ft.get_card(name)
    except KeyError:
        register_source("test-tiny", _load_tiny, lambda card: True)
        ft.register_model(ft.ModelCard(name=name, source="test-tiny", task="image-classification", arch="tiny",
                                       head="fc", groups=(("conv", r"conv\."), ("body", r"body\."), ("head", r"fc\.")),
                                       input_size=(1, 8, 8), mean=(0.5,), std=(0.5,)))
    return name



@pytest.fixture(scope="module")
def data():
    return ft.load_dataset("digits", register_tiny(), seed=0)


def count_fits(monkeypatch):
    calls = []
    real = ftkit.experiments.strategies.fit

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ftkit.experiments.strategies, "fit", counting)
    return calls


def without_time(rows):
    return [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s", "peak_memory_mb")} for r in rows]


def test_compare_gives_one_row_per_strategy_with_every_column(data):
    strategies = [scratch(), linear_probe(), partial(2), full(lr=1e-3), two_phase(), gradual_unfreeze(),
                  discriminative()]
    result = compare(strategies, model=NAME, data=data, seeds=[0, 1], per_class=5, cache=False, progress=False,
                     **EPOCHS)
    assert [r["strategy"] for r in result.rows] == [s.name for s in strategies]
    for row in result.rows:
        for column in ("accuracy", "accuracy_std", "f1", "f1_std", "trainable", "trainable %", "time_s",
                       "samples_per_s", "peak_memory_mb", "path", "seeds"):
            assert column in row, column
        assert 0 <= row["accuracy"] <= 1 and row["seeds"] == 2
    rows = {r["strategy"]: r for r in result.rows}
    total = sum(p.numel() for p in TinyCNN().parameters())
    assert rows["linear probe"]["trainable"] == 32 * 10 + 10
    assert rows["linear probe"]["path"] == "feature-cache"
    assert rows["full"]["trainable"] == rows["scratch"]["trainable"] == total
    assert rows["two-phase"]["path"] == "feature-cache + full"
    assert rows["partial-2"]["trainable"] == 32 * 10 + 10 + 8 * 4 * 4 * 32 + 32
    # Every run is kept, with its History and its test report.
    assert len(result.runs) == len(strategies) * 2
    run = result.runs[0]
    assert isinstance(run["history"], ft.History) and len(run["history"].epochs) == 2
    assert len(run["report"]["confusion"]) == 10 and run["train_size"] == 50
    two = result.history("two-phase", seed=0)
    assert [e["phase"] for e in two.epochs] == [1, 2, 2]  # head for 1 epoch, then everything for 2
    assert [e["trainable"] for e in result.history("gradual unfreezing").epochs] == [330, 330 + 4128]
    assert "±" in str(result) and "<table>" in result._repr_html_()
    assert len(result.per_seed()) == len(strategies) * 2


def test_seeds_change_results_and_the_same_seed_reproduces_them_exactly(data):
    strategies = [full(lr=3e-3)]
    a = compare(strategies, model=NAME, data=data, seeds=[0, 1], per_class=5, cache=False, progress=False, **EPOCHS)
    b = compare(strategies, model=NAME, data=data, seeds=[0, 1], per_class=5, cache=False, progress=False, **EPOCHS)
    assert without_time(a.rows) == without_time(b.rows)
    assert [r["history"].epochs[-1]["val_loss"] for r in a.runs] == [r["history"].epochs[-1]["val_loss"]
                                                                       for r in b.runs]
    losses = [r["loss"] for r in a.runs]
    assert losses[0] != losses[1]  # seed 1 draws another head, other examples, another batch order
    assert a.rows[0]["accuracy_std"] > 0 or a.rows[0]["f1_std"] > 0


def test_cache_returns_identical_rows_without_training_and_refresh_trains_again(data, monkeypatch):
    fits = count_fits(monkeypatch)
    strategies = [linear_probe(), two_phase()]
    kwargs = dict(model=NAME, data=data, seeds=[0, 1], per_class=3, progress=False, **EPOCHS)
    first = compare(strategies, **kwargs)
    assert len(fits) == 2 + 2 * 2  # two-phase fits twice per seed
    again = compare(strategies, **kwargs)
    assert len(fits) == 6  # nothing trained
    assert again.rows == first.rows  # identical, times included: they are the cached runs
    assert all(run["cached"] for run in again.runs) and not any(run["cached"] for run in first.runs)
    assert again.runs[1]["history"].to_dict() == first.runs[1]["history"].to_dict()
    refreshed = compare(strategies, refresh=True, **kwargs)
    assert len(fits) == 12
    assert without_time(refreshed.rows) == without_time(first.rows)
    # Anything that changes the result is a different cache entry: here the seed and the epochs.
    compare(strategies[:1], **dict(kwargs, seeds=[2]))
    compare(strategies[:1], **dict(kwargs, epochs=3))
    assert len(fits) == 12 + 1 + 2
    # Renaming a strategy keeps its cached results, shown under the new name.
    renamed = compare([linear_probe(name="probe")], **kwargs)
    assert len(fits) == 15
    assert [r["strategy"] for r in renamed.runs] == ["probe", "probe"] and renamed.rows[0]["strategy"] == "probe"
    # The cache is JSON, written whole.
    files = list(ftkit.core.util.cache_dir("results").glob("*.json"))
    assert files and not list(ftkit.core.util.cache_dir("results").glob("*.tmp"))
    assert json.loads(files[0].read_text())["format"] == 1


def test_data_efficiency_has_one_row_per_strategy_and_size(data):
    strategies = [scratch(), linear_probe()]
    result = data_efficiency(strategies, model=NAME, data=data, per_class=[1, 4, None], seeds=[0], cache=False,
                             progress=False, epochs=1, batch_size=64)
    assert [(r["strategy"], r["per_class"]) for r in result.rows] == [
        ("scratch", 1), ("linear probe", 1), ("scratch", 4), ("linear probe", 4), ("scratch", None),
        ("linear probe", None)]
    sizes = {r["per_class"]: r["train_size"] for r in result.rows}
    assert sizes == {1: 10, 4: 40, None: len(data.train)}
    assert result.kind == "data_efficiency" and "all" in str(result)


def test_source_adds_forgetting_and_a_per_epoch_source_accuracy(data):
    # The source task here is the same digits through the "pre-trained" head: plumbing, not a claim.
    result = compare([scratch(), linear_probe(), full(lr=3e-3)], model=NAME, data=data, seeds=[0], per_class=5,
                     source=data, cache=False, progress=False, **EPOCHS)
    rows = {r["strategy"]: r for r in result.rows}
    assert rows["scratch"]["forgetting"] is None and rows["scratch"]["source_accuracy"] is not None
    before = result.runs[1]["history"].info["source_accuracy_before"]
    # A linear probe trains only the new head: the body is untouched, the pre-trained head sees the same features.
    assert rows["linear probe"]["forgetting"] == pytest.approx(0.0, abs=1e-9)
    assert rows["linear probe"]["source_accuracy"] == pytest.approx(before)
    assert rows["full"]["forgetting"] == pytest.approx(before - rows["full"]["source_accuracy"], abs=1e-12)
    assert all("source_accuracy" in e for e in result.history("full").epochs)


def test_a_model_function_needs_a_stable_name_and_can_do_scratch(data):
    def make():
        torch.manual_seed(5)
        return TinyCNN(10)

    with pytest.raises(ValueError, match="model_key"):
        compare([full()], model=make, data=data, seeds=[0], per_class=2, progress=False, epochs=1)
    same = dict(lr=1e-3, freeze=None)
    result = compare([Strategy("pre-trained", **same), Strategy("from scratch", pretrained=False, **same)],
                     model=make, model_key="tiny-cnn-v1", data=data, seeds=[0], per_class=2, progress=False, epochs=1)
    assert result.runs[0]["loss"] != result.runs[1]["loss"]  # the only difference: scratch re-initialised the layers


def test_strategies_describe_themselves_and_errors_say_what_to_do(data):
    table = strategy_table([scratch(), linear_probe(), partial(3), two_phase(), l2sp(), lora(4), bitfit()])
    assert [r["strategy"] for r in table.rows][-3:] == ["L2-SP", "LoRA r=4", "BitFit"]
    assert "L2SP(alpha=0.01, beta=0.0001)" in str(table) and "LoRA(r=4" in str(table)
    assert json.dumps(l2sp().describe()) and two_phase().describe()["phases"][1]["lr"] == "1e-05..0.001"
    with pytest.raises(ValueError, match="distinct names"):
        compare([full(), full()], model=NAME, data=data, seeds=[0], progress=False)
    with pytest.raises(ValueError, match="not a TrainConfig field"):
        Strategy("x", train={"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="strategy's own field"):
        Strategy("x", train={"lr": 1e-3})
    with pytest.raises(ValueError, match="partial"):
        partial(0)
    lam = Strategy("clip", regularizers=(lambda m: (lambda model: 0.0),))
    with pytest.raises(ValueError, match="key"):
        lam.cache_key()
    keyed = Strategy("clip", regularizers=(lambda m: (lambda model: torch.zeros(())),), key="zero-penalty")
    assert keyed.cache_key()["key"] == "zero-penalty"
    other = ft.load_dataset("digits", None, seed=0)
    with pytest.raises(ValueError, match="prepared for"):
        compare([full()], model=NAME, data=ft.Splits(other.train, other.val, other.test, other.classes, other.task,
                                                     "digits", info={"model": "resnet18"}), progress=False)


def test_sweep_makes_named_variants():
    grid = sweep(full(), lr=[1e-4, 1e-3], weight_decay=[0.0, 0.1])
    assert len(grid) == 4 and len({s.name for s in grid}) == 4
    assert grid[-1].lr == 1e-3 and dict(grid[-1].train)["weight_decay"] == 0.1
    assert len(sweep(full(), n=3, seed=1, lr=[1e-5, 1e-4, 1e-3], epochs=[1, 2])) == 3


def test_run_strategy_on_a_model_in_hand(data):
    model = ft.load_model(NAME, num_classes=10)
    history = run_strategy(Strategy("phases", phases=(Phase(-1, 1, 1e-2), Phase(-2, 1, 1e-3))), model,
                           ft.few_shot(data.train, 3), data.val, batch_size=16)
    assert [e["trainable"] for e in history.epochs] == [330, 330 + 4128]
    assert [s["step"] for s in history.steps] == list(range(1, len(history.steps) + 1))
    assert history.info["path"] == "feature-cache + full"


def test_result_table_is_plain_data(data):
    result = compare([linear_probe(), full(lr=1e-3)], model=NAME, data=data, seeds=[0, 1], per_class=2,
                     progress=False, epochs=1)
    again = ResultTable.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.rows == result.rows and again.runs[0]["history"].epochs == result.runs[0]["history"].epochs
    best = result.best("accuracy")
    assert best["accuracy"] == max(r["accuracy"] for r in result.rows)
    assert result.best("time_s")["time_s"] == min(r["time_s"] for r in result.rows)
    with pytest.raises(KeyError, match="columns"):
        result.best("nonsense")


# --- the regularisation / PEFT strategies (their modules come from another part of ftkit) ------------


def test_l2sp_strategy_runs(data):
    result = compare([l2sp(lr=1e-3)], model=NAME, data=data, seeds=[0], per_class=3, cache=False, progress=False,
                     **EPOCHS)
    history = result.runs[0]["history"]
    assert "penalty" in history.epochs[0] and result.rows[0]["path"] == "full"


def test_lora_strategy_trains_the_head_and_the_low_rank_updates(data):
    pytest.importorskip("ftkit.tuning.lora", reason="ftkit.tuning.lora is not in this checkout yet")
    strategy = lora(r=2, targets=["body.1"])
    model = ft.load_model(NAME, num_classes=10)
    history = run_strategy(strategy, model, ft.few_shot(data.train, 3), data.val, **EPOCHS)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("fc" in n for n in trainable) and any("lora" in n.lower() for n in trainable)
    assert history.epochs[-1]["trainable"] < sum(p.numel() for p in model.parameters())


def test_bitfit_strategy_trains_biases_and_the_head(data):
    pytest.importorskip("ftkit.tuning.adapt", reason="ftkit.tuning.adapt (bitfit) is not in this checkout yet")
    model = ft.load_model(NAME, num_classes=10)
    run_strategy(bitfit(), model, ft.few_shot(data.train, 3), data.val, **EPOCHS)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"fc.weight", "fc.bias", "body.1.bias"} <= trainable and "body.1.weight" not in trainable


# --- regularisation knobs on a strategy, and the generalisation gap ------------------------------


def test_dropout_and_augment_on_a_strategy_change_the_model_and_the_training_images(data, monkeypatch):
    seen = []
    real = ftkit.experiments.strategies.fit

    def spy(model, train, *args, **kwargs):
        seen.append((model.fc, train.transform.augment_name))
        return real(model, train, *args, **kwargs)

    monkeypatch.setattr(ftkit.experiments.strategies, "fit", spy)
    strategy = Strategy("regularised", lr=1e-3, dropout=0.3, augment="strong")
    model = ft.load_model(NAME, num_classes=10)
    train = ft.few_shot(data.train, 3)
    run_strategy(strategy, model, train, data.val, **EPOCHS)
    head, augment = seen[0]
    assert isinstance(head, ft.DropoutLinear) and head.p == 0.3 and augment == "strong"
    assert train.transform.augment_name == "none"  # the caller's split is left as it was
    # Both are part of the recipe, so of its cache key and its table row.
    plain = Strategy("plain", lr=1e-3)
    assert strategy.cache_key() != plain.cache_key()
    assert "dropout 0.3, augment strong" in str(strategy_table([strategy]))
    with pytest.raises(ValueError, match="dropout must be None or a rate"):
        Strategy("bad", dropout=1.5)
    with pytest.raises(ValueError, match="augment must be None or one of the presets"):
        Strategy("bad", augment="flip")


def test_compare_with_gap_scores_the_training_examples_without_augmentation(data, monkeypatch):
    scored = []
    real = ftkit.experiments.compare.evaluate

    def spy(model, split, **kwargs):
        scored.append((len(split), split.transform.augment_name))
        return real(model, split, **kwargs)

    monkeypatch.setattr(ftkit.experiments.compare, "evaluate", spy)  # the test split
    monkeypatch.setattr(ftkit.experiments.analysis, "evaluate", spy)  # the training examples (gap_against)
    strategies = [full(lr=3e-3), Strategy("augmented", lr=3e-3, augment="strong")]
    result = compare(strategies, model=NAME, data=data, seeds=[0, 1], per_class=5, cache=False, progress=False,
                     gap=True, epochs=4, batch_size=10)
    for run in result.runs:
        assert run["gap"] == pytest.approx(run["train_accuracy"] - run["accuracy"]) and 0 <= run["train_accuracy"] <= 1
    for row in result.rows:
        mean = sum(r["gap"] for r in result.runs if r["strategy"] == row["strategy"]) / 2
        assert row["gap"] == pytest.approx(mean) and "gap_std" in row
    assert scored.count((50, "none")) == 4 and all(augment == "none" for _, augment in scored)  # 50 = 5 x 10 classes
    plain = compare(strategies[:1], model=NAME, data=data, seeds=[0], per_class=5, cache=False, progress=False,
                    epochs=4, batch_size=10)
    assert "gap" not in plain.rows[0] and "train_accuracy" not in plain.runs[0]
    assert result.best("gap")["gap"] == min(r["gap"] for r in result.rows)


def test_a_cached_run_without_the_gap_is_trained_again_when_the_gap_is_asked_for(data, monkeypatch, tmp_path):
    monkeypatch.setenv("FTKIT_HOME", str(tmp_path))
    fits = count_fits(monkeypatch)
    kwargs = dict(model=NAME, data=data, seeds=[0], per_class=3, progress=False, **EPOCHS)
    compare([full(lr=1e-3)], **kwargs)
    compare([full(lr=1e-3)], **kwargs)
    assert len(fits) == 1
    with_gap = compare([full(lr=1e-3)], gap=True, **kwargs)
    assert len(fits) == 2 and "gap" in with_gap.runs[0]
    compare([full(lr=1e-3)], gap=True, **kwargs)
    assert len(fits) == 2


def test_with_augmentation_copies_the_split_and_refuses_data_it_cannot_augment(data):
    strong = ft.with_augmentation(data.train, "strong")
    assert strong is not data.train and strong.transform.augment_name == "strong"
    assert data.train.transform.augment_name == "none"
    assert ft.with_augmentation(strong, "none").transform.augment is None
    assert ft.with_augmentation(data.train, "none") is data.train
    torch.manual_seed(0)
    x0, y0 = strong[0]
    x1, y1 = strong[0]
    assert y0 == y1 and not torch.equal(x0, x1)  # a new variant each time the example is read
    assert torch.equal(ft.with_augmentation(strong, "none")[0][0], data.train[0][0])
    tensors = torch.utils.data.TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    assert ft.with_augmentation(tensors, None) is tensors
    with pytest.raises(TypeError, match="apply to ftkit image datasets"):
        ft.with_augmentation(tensors, "light")
    with pytest.raises(ValueError, match="Unknown augmentation preset"):
        ft.with_augmentation(data.train, "flip")


def test_retrained_weights_under_an_unchanged_name_never_return_stale_rows(data, monkeypatch):
    # A model whose "pre-trained" weights are retrained while its name and card stay the same.
    fits = count_fits(monkeypatch)
    kwargs = dict(model=NAME, data=data, seeds=[5], per_class=2, progress=False, **EPOCHS)
    first = compare([linear_probe()], **kwargs)
    assert len(fits) == 1 and compare([linear_probe()], **kwargs).runs[0]["cached"]

    def retrained(card, pretrained):
        model = _load_tiny(card, pretrained)
        with torch.no_grad():
            model.conv[0].weight.mul_(1.5)
        return model

    monkeypatch.setitem(ftkit.models.catalogue._LOADERS, "test-tiny", retrained)  # same name, same card
    second = compare([linear_probe()], **kwargs)
    assert len(fits) == 2 and not second.runs[0]["cached"]  # trained again: the weights are not the same
    assert second.runs[0]["history"].to_dict() != first.runs[0]["history"].to_dict()


def test_ctrl_c_inside_a_run_stops_compare_and_caches_only_finished_runs(data):
    class StopInSecondRun:
        def __init__(self):
            self.runs = 0

        def on_fit_end(self, history, model):
            self.runs += 1

        def on_step(self, history, model):
            if self.runs == 1 and len(history.steps) == 2:
                raise KeyboardInterrupt

    kwargs = dict(model=NAME, data=data, seeds=[7, 8], per_class=2, progress=False, **EPOCHS)
    with pytest.raises(KeyboardInterrupt, match="finished runs are cached"):
        compare([full(lr=1e-3)], callbacks=[StopInSecondRun()], **kwargs)
    again = compare([full(lr=1e-3)], **kwargs)
    assert [run["cached"] for run in again.runs] == [True, False]  # the stopped run was not kept as a result


def test_compare_records_validation_scores_to_choose_by_without_the_test_split(data):
    result = compare([full(lr=1e-3), full(lr=1e-1, name="too high")], model=NAME, data=data, seeds=[0, 1],
                     per_class=5, cache=False, progress=False, **EPOCHS)
    for run in result.runs:  # the last epoch's validation scores, not the test split's
        last = run["history"].epochs[-1]
        assert run["val_accuracy"] == last["val_accuracy"] and run["val_loss"] == last["val_loss"]
    for row in result.rows:
        runs = [r for r in result.runs if r["strategy"] == row["strategy"]]
        assert row["val_accuracy"] == pytest.approx(sum(r["val_accuracy"] for r in runs) / 2)
    assert result.best("val_accuracy")["strategy"] in {"full", "too high"}
    assert "validation split" in str(result)
    # A run cached before these columns existed gets them from its History.
    old = [{k: v for k, v in run.items() if not k.startswith("val_")} for run in result.runs]
    assert ft.experiments.results.summarise(old, by=("strategy",))[0]["val_accuracy"] == result.rows[0]["val_accuracy"]


def test_validation_scores_follow_the_restored_epoch():
    history = ft.History(epochs=[{"epoch": 1, "val_accuracy": 0.9, "val_loss": 0.3},
                                 {"epoch": 2, "val_accuracy": 0.5, "val_loss": 0.9}], info={"restored_epoch": 1})
    assert ftkit.experiments.results.validation_scores(history) == {"val_accuracy": 0.9, "val_loss": 0.3}
