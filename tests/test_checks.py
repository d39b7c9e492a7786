"""Bad inputs get a clear ftkit error, of the right type, with a message that says what to do.

Each row of ``CASES`` is a mistake a learner makes: the call, the error type expected (an
``ft.FtkitError`` that is also the matching built-in) and words the message must contain.
"""
import warnings

import pytest
import torch
import transformers as T
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ftkit as ft

from helpers import assert_same, blobs, state


def cnn(channels=3, classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, classes))


def mlp(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, classes))


def bert():
    torch.manual_seed(0)
    return T.BertForSequenceClassification(T.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=16, num_labels=3))


def _vit():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2,
                                                hidden_dim=16, mlp_dim=16, num_classes=3)


def images(n=12, channels=3, classes=3):
    return TensorDataset(torch.rand(n, channels, 8, 8), torch.arange(n) % classes)


class Texts(torch.utils.data.Dataset):
    """Raw strings with labels, as ft.load_dataset("bbc-news") gives without a model."""

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return f"an article about topic {i % 3}", i % 3


class Pictures(Texts):
    def __getitem__(self, i):
        return Image.new("RGB", (8, 8)), i % 3


class Tokens(Texts):
    def __getitem__(self, i):
        return {"input_ids": torch.tensor([1, 5, 7, 2]), "attention_mask": torch.ones(4, dtype=torch.long),
                "labels": torch.tensor(i % 3)}


quiet = dict(epochs=1, batch_size=4, progress=False, live=False)

CASES = {
    "raw texts into fit": (lambda: ft.fit(bert(), Texts(), **quiet), ft.DataError, "raw texts"),
    "raw texts into evaluate": (lambda: ft.evaluate(bert(), Texts()), ft.DataError, "tokenized"),
    "raw texts into predict": (lambda: ft.predict(bert(), Texts()), ft.DataError, "raw texts"),
    "raw texts into lr_find": (lambda: ft.lr_find(bert(), Texts(), num_steps=3, progress=False), ft.DataError,
                               "ft.load_dataset"),
    "PIL images into fit": (lambda: ft.fit(cnn(), Pictures(), **quiet), ft.DataError, "PIL images"),
    "1-channel images into a 3-channel CNN": (lambda: ft.fit(cnn(3), images(channels=1), **quiet), ft.DataError,
                                              "1 channel(s)"),
    "3-channel images into a 1-channel CNN": (lambda: ft.evaluate(cnn(1), images(channels=3)), ft.DataError,
                                              "expects 1"),
    "images into a text model": (lambda: ft.fit(bert(), images(), **quiet), ft.DataError, "token ids"),
    "texts into an image model": (lambda: ft.fit(cnn(), Tokens(), **quiet), ft.DataError, "reads images"),
    "float labels for classification": (
        lambda: ft.fit(mlp(), TensorDataset(torch.randn(8, 6), torch.rand(8)), **quiet), ft.DataError,
        "class indices"),
    "labels beyond the head": (lambda: ft.fit(mlp(classes=3), TensorDataset(torch.randn(8, 6), torch.arange(8)),
                                              **quiet), ft.DataError, "num_classes=8"),
    "negative labels": (lambda: ft.evaluate(mlp(), TensorDataset(torch.randn(4, 6), torch.tensor([0, 1, -1, 2]))),
                        ft.DataError, "from -1 to 2"),
    "labels beyond the head in a DataLoader": (
        lambda: ft.fit(mlp(classes=2), DataLoader(blobs(), batch_size=8), **quiet), ft.DataError, "2 outputs"),
    "an empty dataset": (lambda: ft.fit(mlp(), TensorDataset(torch.zeros(0, 6), torch.zeros(0).long()), **quiet),
                         ft.DataError, "empty"),
    "an unknown model name": (lambda: ft.load_model("resnet19"), ft.UnknownNameError, "Did you mean 'resnet18'"),
    "an unknown dataset name": (lambda: ft.load_dataset("digit"), ft.UnknownNameError, "Did you mean 'digits'"),
    "an unknown schedule": (lambda: ft.fit(mlp(), blobs(), schedule="cosin", **quiet), ft.ConfigError,
                            "Did you mean 'cosine'"),
    "an unknown optimizer": (lambda: ft.fit(mlp(), blobs(), optimizer="adamm", **quiet), ft.ConfigError,
                             "Did you mean"),
    "a learning rate of 0": (lambda: ft.fit(mlp(), blobs(), lr=0.0, **quiet), ft.ConfigError, "lr must be > 0"),
    "a batch size of 0": (lambda: ft.TrainConfig(batch_size=0), ft.ConfigError, "batch_size"),
    "everything frozen": (lambda: ft.fit(ft.freeze(mlp(), r"."), blobs(), **quiet), ft.ConfigError,
                          "nothing to train"),
    "a LoRA target that matches nothing": (lambda: ft.add_lora(mlp(), targets="attention"), ft.ConfigError,
                                           "No layer matches"),
    "CUDA where there is none": (lambda: ft.fit(mlp(), blobs(), device="cuda", **quiet), ft.ConfigError,
                                 "no CUDA GPU"),
    "per_class larger than the data": (lambda: ft.few_shot(ft.load_dataset("digits").train, per_class=1000),
                                       ft.DataError, "not enough examples"),
    "a checkpoint of another architecture": (
        lambda: ft.load_checkpoint(ft.save_checkpoint(mlp(classes=5), TMP() / "other.safetensors"), mlp()),
        ft.CheckpointError, "shape"),
    "a truncated checkpoint": (lambda: ft.load_checkpoint(_truncated(), mlp()), ft.CheckpointError, "not a readable"),
    "a pickle given as a checkpoint": (lambda: ft.load_checkpoint(_pickled(), mlp()), ft.CheckpointError,
                                       "never unpickles"),
    "a CSV without the named column": (lambda: ft.from_csv(_csv(), text="body", label="topic"), ft.DataError,
                                       "no column 'body'"),
    "an image folder with no images": (lambda: ft.from_folder(_empty_folder()), ft.DataError, "No images"),
    "a single-class training set": (lambda: ft.fit(mlp(), _one_class(), **quiet), ft.DataError, "same label"),
    "an unwritable checkpoint folder": (lambda: ft.fit(mlp(), blobs(), checkpoint_dir=_under_a_file(), **quiet),
                                        ft.CheckpointError, "cannot write checkpoints"),
    "weights not cached, offline": (lambda: ft.load_model("some-org/not-a-cached-model", num_classes=2),
                                    ft.PretrainedUnavailableError, "minilm-l6"),
    "images of a size a ViT cannot take": (lambda: ft.fit(_vit(), images(), **quiet), ft.DataError,
                                            "cannot take images of (8, 8) pixels"),
    "a learning rate that diverges": (
        lambda: ft.fit(mlp(), blobs(), epochs=2, lr=1e12, optimizer="sgd", schedule="constant", progress=False,
                       live=False), ft.NonFiniteLossError, "learning rate is too high"),
}


_TMP = []


def TMP():
    return _TMP[-1]


def _truncated():
    path = ft.save_checkpoint(mlp(), TMP() / "whole.safetensors")
    cut = TMP() / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:200])
    return cut


class _Boom:
    """Unpickling this would create a file: the proof that a pickle ran code."""

    def __reduce__(self):
        return (open, (str(TMP() / "PWNED"), "w"))


def _pickled():
    path = TMP() / "model.pt"
    torch.save({"state": _Boom()}, path)
    return path


def _csv():
    path = TMP() / "news.csv"
    path.write_text("title,topic\nhello,a\nworld,b\n")
    return path


def _one_class():
    data = TensorDataset(torch.randn(6, 6), torch.ones(6, dtype=torch.long))
    data.targets = [1] * 6  # a dataset that lists its labels, as ft's datasets do
    return data


def _under_a_file():
    (TMP() / "file").write_text("a file, not a folder")
    return TMP() / "file" / "checkpoints"


def _empty_folder():
    for name in ("cats", "dogs"):
        (TMP() / "pets" / name).mkdir(parents=True)
        (TMP() / "pets" / name / "notes.txt").write_text("not an image")
    return TMP() / "pets"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_input_gets_a_clear_error(name, tmp_path):
    _TMP.append(tmp_path)
    call, kind, words = CASES[name]
    with pytest.raises(kind) as caught:
        call()
    assert isinstance(caught.value, ft.FtkitError)
    assert words in str(caught.value), str(caught.value)


def test_the_errors_are_also_the_builtin_errors_they_are_kinds_of():
    assert issubclass(ft.DataError, ValueError) and issubclass(ft.ConfigError, ValueError)
    assert issubclass(ft.UnknownNameError, KeyError) and issubclass(ft.CheckpointError, RuntimeError)
    assert issubclass(ft.NonFiniteLossError, FloatingPointError)
    assert str(ft.UnknownNameError("No model 'x'.")) == "No model 'x'."  # not in KeyError's quotes


def test_a_diverging_run_stops_at_the_first_bad_step_and_keeps_the_epochs_weights():
    model = mlp()
    ft.fit(model, blobs(), epochs=1, lr=1e-2, progress=False, live=False)
    good = state(model)
    with pytest.raises(ft.NonFiniteLossError) as caught:
        ft.fit(model, blobs(), epochs=3, lr=1e12, optimizer="sgd", schedule="constant", progress=False, live=False)
    history = caught.value.history
    bad = len(history.steps) + 1  # the first step whose loss was not a number; the steps before it are recorded
    assert history.info["nonfinite"] and f"at step {bad} (epoch 1)" in str(caught.value)
    assert not history.epochs and all(torch.isfinite(torch.tensor(s["loss"])) for s in history.steps)
    assert_same(state(model), good)  # back at the weights the epoch began with, all finite


def test_a_label_count_below_the_head_size_warns_in_fit():
    data = TensorDataset(torch.randn(8, 6), torch.arange(8) % 2)
    data.classes = ["a", "b"]
    with pytest.warns(UserWarning, match="2 classes but the model's head has 3 outputs"):
        ft.fit(mlp(classes=3), data, **quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft.evaluate(mlp(classes=3), data)  # scoring with a bigger head (zero-shot) is fine


def test_save_checkpoint_takes_the_model_first_and_the_old_order_with_a_warning(tmp_path):
    model = mlp()
    new = ft.save_checkpoint(model, tmp_path / "new.safetensors", epoch=1)
    with pytest.warns(DeprecationWarning, match="save_checkpoint\\(model, path\\)"):
        old = ft.save_checkpoint(tmp_path / "old.safetensors", model, epoch=1)
    assert ft.checkpoint_info(new)["state"] == ft.checkpoint_info(old)["state"]
    with pytest.raises(TypeError, match="saves an nn.Module"):
        ft.save_checkpoint(tmp_path / "x.safetensors", tmp_path / "y.safetensors")


def test_a_pickled_checkpoint_never_runs_its_code(tmp_path):
    _TMP.append(tmp_path)
    path = _pickled()
    assert not (tmp_path / "PWNED").exists()  # saving did not run it either
    with pytest.raises(ft.CheckpointError) as caught:
        ft.load_checkpoint(path, mlp())
    assert not (tmp_path / "PWNED").exists()
    assert "pickle file" in str(caught.value) and "can run any code" in str(caught.value)


def test_the_table_of_bad_inputs_has_at_least_thirty_rows():
    assert len(CASES) >= 30


def test_texts_longer_than_the_model_reads_are_cut_with_a_warning():
    with pytest.warns(UserWarning, match="more than this model reads"):
        data = ft.load_dataset("bbc-news", "minilm-l6", max_length=100_000)
    assert max(len(item["input_ids"]) for item in (data.train[i] for i in range(50))) <= 512



def test_out_of_memory_in_fit_says_what_to_try_and_keeps_the_epochs_weights(monkeypatch):
    import ftkit.train.loop as loop

    model = mlp()
    start = state(model)
    real = loop.forward_batch
    calls = []

    def tight(net, batch):
        calls.append(1)
        if len(calls) == 3:  # the third batch does not fit
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(net, batch)

    monkeypatch.setattr(loop, "forward_batch", tight)
    with pytest.raises(ft.DeviceMemoryError) as caught:
        ft.fit(model, blobs(), epochs=2, batch_size=16, accumulate=2, progress=False, live=False)
    message = str(caught.value)
    assert "batch_size=16" in message and "batch_size=8, accumulate=4" in message and "find_batch_size" in message
    assert isinstance(caught.value, MemoryError)
    assert_same(state(model), start)  # back at the weights the epoch began with


def test_find_batch_size_halves_until_a_step_fits_keeps_the_effective_batch_and_the_model(monkeypatch):
    import ftkit.train.batch_size as search

    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model[1].eval()  # a mode the search must give back
    before = state(model)
    real = search.forward_batch
    tried = []

    def fits_up_to_12(net, batch):
        tried.append(len(batch[0]))
        if len(batch[0]) > 12:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(net, batch)

    monkeypatch.setattr(search, "forward_batch", fits_up_to_12)
    assert ft.find_batch_size(model, blobs(), batch_size=64, accumulate=2) == (8, 16)
    assert tried == [64, 32, 16, 8]
    assert_same(state(model), before)  # BatchNorm statistics included
    assert not model[1].training and all(p.grad is None for p in model.parameters())
    monkeypatch.setattr(search, "forward_batch", lambda net, batch: (_ for _ in ()).throw(torch.OutOfMemoryError()))
    with pytest.raises(ft.DeviceMemoryError, match="Even a batch of one"):
        ft.find_batch_size(model, blobs(), batch_size=4)


def test_nonfinite_skip_drops_the_bad_steps_and_trains_on():
    x, y = blobs(48).tensors
    x = x.clone()
    x[5, 0] = float("nan")  # one broken example: its batch's loss is NaN in every epoch
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    history = ft.fit(model, TensorDataset(x, y), epochs=3, batch_size=8, nonfinite="skip", progress=False,
                     live=False)
    assert [s["epoch"] for s in history.steps if s.get("skipped")] == [1, 2, 3]
    assert [e.get("skipped_steps") for e in history.epochs] == [1, 1, 1]
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())  # BatchNorm statistics too
    assert all(torch.isfinite(torch.tensor(e["train_loss"])) for e in history.epochs)
    with pytest.raises(ft.ConfigError, match="nonfinite"):
        ft.TrainConfig(nonfinite="ignore")


def test_unreadable_image_files_are_skipped_with_a_warning_naming_them(tmp_path):
    for name in ("ants", "bees"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "bees" / "broken.jpg").write_bytes(b"not really a jpeg")
    (tmp_path / "ants" / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"Skipped 2 file\(s\).*broken\.jpg") as caught:
        data = ft.from_folder(tmp_path, val_size=0.0, test_size=0.0)
    assert "empty.png" in str(caught[0].message)
    assert len(data.train) == 6
