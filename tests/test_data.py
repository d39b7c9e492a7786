"""Datasets, splits, transforms from model cards, glyph rendering, your own files, offline errors."""
import dataclasses
import time
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import ftkit as ft
import ftkit.data.files
from ftkit.data import catalogue as DS
from ftkit.data import labeled as D
from ftkit.data.glyphs import font_names, render_glyphs
from ftkit.data.transforms import ImageTransform, augmentation, tokenize

RESNET = ft.get_card("resnet18")
MINILM = ft.get_card("minilm-l6")
# A small 1-channel 32x32 image model card, as the zoo's backbones have.
TINY = dataclasses.replace(RESNET, name="tiny-grey", input_size=(1, 32, 32), mean=(0.5,), std=(0.25,))
ONLINE = ["cifar10", "oxford-pets", "flowers102", "hymenoptera", "sst2", "ag-news"]


def _glyphs(**kw):
    return ft.load_dataset("glyphs", kw.pop("model", TINY), per_class=kw.pop("per_class", 20), **kw)


def _ids(splits):
    return [set(part.indices) for part in splits]


def _png_folder(root, counts: dict, size=(12, 10), color=None):
    """Class folders of small PNGs, each a different image."""
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) if color is None else \
                np.full((size[1], size[0], 3), color, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


# --- the offline datasets, raw and prepared for a card ----------------------------------------


@pytest.mark.parametrize("name", ["bbc-news", "digits", "glyphs"])
def test_offline_splits_are_disjoint_cover_everything_and_stratified(name):
    data = ft.load_dataset(name, **({"per_class": 30} if name == "glyphs" else {}))
    train, val, test = _ids(data)
    n = len(data.train) + len(data.val) + len(data.test)
    assert not (val & test) and not (train & val) and not (train & test)
    assert train | val | test == set(range(n))
    assert len(data.test) == round(0.2 * n) and len(data.val) == round(0.1 * n)
    everything = np.bincount(data.train.targets + data.val.targets + data.test.targets)
    for part, frac in ((data.test, 0.2), (data.val, 0.1)):
        counts = np.bincount(part.targets, minlength=len(everything))
        assert np.all(np.abs(counts - frac * everything) <= 1.5), (name, counts, frac * everything)
    assert data.classes == data.train.classes and len(data.classes) == data.num_classes
    # Shuffled, not grouped by class: a DataLoader without shuffle=True still sees mixed batches.
    for part in data:
        changes = np.count_nonzero(np.diff(part.targets))
        assert changes > 0.6 * (1 - np.sum((everything / everything.sum()) ** 2)) * len(part), (name, changes)


def test_bbc_news_raw_is_text_with_sorted_classes():
    data = ft.load_dataset("bbc-news")
    assert data.task == "text-classification" and len(data.classes) == 5
    assert data.classes == sorted(data.classes) and data.classes[0] == "business"
    assert len(data.train) + len(data.val) + len(data.test) == 2225 and len(data.test) >= 300
    text, label = data.train[0]
    assert isinstance(text, str) and len(text) > 100 and isinstance(label, int)
    assert data.train.collate_fn is None and data.train.inputs[0] == text


def test_bbc_news_tokenized_for_minilm_and_collate_pads():
    start = time.perf_counter()
    data = ft.load_dataset("bbc-news", MINILM)
    assert time.perf_counter() - start < 15
    item = data.train[0]
    assert set(item) == {"input_ids", "attention_mask", "labels"}
    assert item["input_ids"].dtype == torch.long and 10 < len(item["input_ids"]) <= MINILM.max_length
    assert item["input_ids"][0] == 101 and item["input_ids"][-1] == 102  # [CLS] ... [SEP]
    assert torch.equal(item["attention_mask"], torch.ones_like(item["input_ids"]))
    assert item["labels"] == data.train.targets[0]
    batch = next(iter(DataLoader(data.train, batch_size=4, collate_fn=data.train.collate_fn)))
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"].shape[0] == 4
    assert batch["labels"].dtype == torch.long


def test_max_length_keeps_the_first_tokens_of_each_text_and_refuses_image_models():
    full = ft.load_dataset("bbc-news", MINILM)
    short = ft.load_dataset("bbc-news", MINILM, max_length=32)
    assert short.train.max_length == 32 and MINILM.max_length == 128  # the card itself is left as it was
    lengths = [len(short.train[i]["input_ids"]) for i in range(20)]
    assert max(lengths) == 32
    for i in range(20):  # the same first tokens, then [SEP]
        long_ids, short_ids = full.train[i]["input_ids"], short.train[i]["input_ids"]
        assert torch.equal(short_ids[:-1], long_ids[:len(short_ids) - 1]) and short_ids[-1] == 102
    assert short.train.fingerprint() != full.train.fingerprint()  # the feature cache tells them apart
    with pytest.raises(ValueError, match="language model reads"):
        ft.load_dataset("digits", "glyph-resnet", max_length=32)
    with pytest.raises(ValueError, match="whole number >= 1"):
        ft.load_dataset("bbc-news", MINILM, max_length=0)


def test_text_collate_pads_to_the_longest_with_the_pad_token():
    tok = ft.load_tokenizer(MINILM)
    ds = D.TextDataset(["a cat", "the dog sat on the mat today", "hi"], [0, 1, 0], ["x", "y"], tokenizer=tok)
    lengths = [len(ds[i]["input_ids"]) for i in range(3)]
    batch = ds.collate_fn([ds[i] for i in range(3)])
    assert batch["input_ids"].shape == (3, max(lengths))
    for row, n in enumerate(lengths):
        assert torch.equal(batch["input_ids"][row, :n], ds[row]["input_ids"])
        assert (batch["input_ids"][row, n:] == tok.pad_token_id).all()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (max(lengths) - n)
    assert batch["labels"].tolist() == [0, 1, 0]
    assert ds.subset([2, 0]).encodings == [ds.encodings[2], ds.encodings[0]]


def test_fast_tokenize_equals_tokenizing_whole_texts():
    tok = ft.load_tokenizer(MINILM)
    texts = list(ftkit.data.files.bbc_files()[1][::15]) + ["word " * 5 + " " * 3000 + "tail words here", "short"]
    expected = [list(r) for r in tok(texts, truncation=True, max_length=64)["input_ids"]]
    assert tokenize(tok, texts, 64) == expected


def test_digits_raw_and_for_an_rgb_card():
    raw = ft.load_dataset("digits")
    assert raw.train.inputs.dtype == torch.uint8 and raw.train.inputs.shape[1:] == (8, 8)
    assert raw.train.inputs.max() == 255 and len(raw.train) + len(raw.val) + len(raw.test) == 1797
    x, y = raw.train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    data = ft.load_dataset("digits", RESNET)
    x, y = data.train[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and isinstance(y, int)
    # A black corner, repeated to 3 channels, normalised with ImageNet's mean and std.
    expected = -torch.tensor(RESNET.mean) / torch.tensor(RESNET.std)
    assert torch.allclose(x[:, 0, 0], expected, atol=1e-5)
    pixels = x * torch.tensor(RESNET.std).view(3, 1, 1) + torch.tensor(RESNET.mean).view(3, 1, 1)
    assert torch.allclose(pixels[0], pixels[1], atol=1e-5) and torch.allclose(pixels[0], pixels[2], atol=1e-5)
    assert pixels.max() > 0.9  # grey repeated into R, G and B; the ink is still there after resizing
    images, labels = next(iter(DataLoader(data.train, batch_size=5)))
    assert images.shape == (5, 3, 224, 224) and labels.dtype == torch.long


def test_glyphs_for_a_grey_32px_card():
    data = _glyphs(per_class=10, chars="abc")
    assert data.classes == ["a", "b", "c"] and data.train.inputs.shape[1:] == (32, 32)
    x, y = data.train[0]
    assert x.shape == (1, 32, 32)
    assert torch.isclose(x.min(), torch.tensor(-2.0)) and x.max() <= 2.0 + 1e-6  # (0 - .5)/.25, (1 - .5)/.25
    raw = ft.load_dataset("glyphs", per_class=10, chars="abc")
    assert raw.train[0][0].shape == (1, 32, 32) and raw.train[0][0].min() == 0


def test_model_argument_forms(tmp_path):
    by_name = ft.load_dataset("digits", "resnet18")
    by_card = ft.load_dataset("digits", RESNET)
    assert torch.equal(by_name.train[3][0], by_card.train[3][0])
    with pytest.raises(ValueError, match="image model"):
        ft.load_dataset("bbc-news", RESNET)
    with pytest.raises(ValueError, match="text model|image model"):
        ft.load_dataset("digits", MINILM)
    with pytest.raises(ValueError, match="ft.load_model"):
        ft.load_dataset("digits", torch.nn.Linear(2, 2))


def test_seeds_give_the_same_or_different_splits():
    a, b, c = (ft.load_dataset("digits", seed=s) for s in (0, 0, 1))
    assert a.train.indices == b.train.indices and a.test.indices == b.test.indices
    assert a.train.indices != c.train.indices
    g1, g2, g3 = (_glyphs(seed=s) for s in (0, 0, 1))
    assert torch.equal(g1.train.inputs, g2.train.inputs) and not torch.equal(g1.train.inputs, g3.train.inputs)


def test_sizes_as_counts_and_errors():
    data = ft.load_dataset("digits", val_size=50, test_size=100)
    assert (len(data.val), len(data.test)) == (50, 100)
    with pytest.raises(ValueError, match="test_size"):
        ft.load_dataset("digits", test_size=1.5)
    few = ft.load_dataset("digits", val_size=3)  # fewer than one per class: still exactly 3, all different
    assert len(few.val) == 3 and len(set(few.val.targets)) == 3


def test_unknown_dataset_and_options_errors():
    with pytest.raises(KeyError, match="Did you mean 'digits'"):
        ft.load_dataset("digit")
    with pytest.raises(TypeError, match="rotation"):
        ft.load_dataset("glyphs", rotatoin=5)
    with pytest.raises(TypeError, match="takes no options"):
        ft.load_dataset("digits", per_class=3)


def test_splits_repr_unpack_and_listing():
    data = _glyphs()
    train, val, test = data
    assert train is data.train and test is data.test
    text, page = repr(data), data._repr_html_()
    for n in (len(train), len(val), len(test)):
        assert f"{n:,}" in text and f"{n:,}" in page
    assert "10 classes" in text and "tiny-grey" in text
    table = ft.list_datasets()
    rows = {r["name"]: r for r in table.rows}
    assert set(rows) == set(D.OFFLINE) | set(ONLINE) | {"zoo-source", "bbc-lm"}
    assert rows["zoo-source"]["offline"]
    assert rows["digits"]["offline"] and rows["bbc-news"]["offline"] and "cifar10" in str(table)


# --- few_shot ---------------------------------------------------------------------------------


def test_few_shot_counts_determinism_nesting_and_errors():
    train = ft.load_dataset("digits").train
    five = ft.few_shot(train, 5, seed=0)
    assert np.bincount(five.targets).tolist() == [5] * 10 and type(five) is type(train)
    assert ft.few_shot(train, 5, seed=0).indices == five.indices
    assert set(ft.few_shot(train, 5, seed=1).indices) != set(five.indices)
    assert set(five.indices) <= set(ft.few_shot(train, 10, seed=0).indices)
    assert set(five.indices) <= set(train.indices)
    counts = np.bincount(train.targets)
    worst = int(np.argmin(counts))
    with pytest.raises(ValueError, match=rf"'{worst}' has {counts[worst]}"):
        ft.few_shot(train, int(counts[worst]) + 1)
    with pytest.raises(ValueError, match="per_class"):
        ft.few_shot(train, 0)


# --- augmentation -----------------------------------------------------------------------------


def test_augmentation_changes_train_items_only():
    plain = _glyphs()
    aug = _glyphs(augment="strong")
    assert torch.equal(plain.train.inputs, aug.train.inputs)
    torch.manual_seed(1)
    first = torch.stack([aug.train[i][0] for i in range(8)])
    torch.manual_seed(2)
    second = torch.stack([aug.train[i][0] for i in range(8)])
    assert not torch.equal(first, second) and not torch.equal(first, torch.stack([plain.train[i][0] for i in range(8)]))
    assert first.shape == (8, 1, 32, 32)
    for part in ("val", "test"):
        a, b = getattr(aug, part), getattr(plain, part)
        assert all(torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][0], a[i][0]) for i in range(5))


def test_augmentation_presets():
    x = torch.rand(1, 20, 28)
    assert torch.equal(augmentation("none")(x), x)
    assert augmentation("light")(x).shape == x.shape
    assert augmentation("strong")(x).shape == x.shape  # no input size: keeps each image's own
    assert augmentation("strong", input_size=(1, 16, 16))(x).shape == (1, 16, 16)
    assert "Flip" not in repr(augmentation("strong")) + repr(augmentation("light"))
    with pytest.raises(ValueError, match="light"):
        augmentation("medium")
    with pytest.raises(ValueError, match="images"):
        ft.load_dataset("bbc-news", augment="light")
    t = ImageTransform(1, (8, 8), (0.5,), (0.5,), augment="light")
    assert t(torch.rand(3, 30, 30)).shape == (1, 8, 8)


# --- glyphs -----------------------------------------------------------------------------------


def test_render_glyphs_shapes_determinism_and_speed():
    start = time.perf_counter()
    x, y = render_glyphs("0123456789", per_class=200, seed=3)
    assert time.perf_counter() - start < 5
    assert x.shape == (2000, 32, 32) and x.dtype == torch.uint8 and y.tolist() == sorted(y.tolist())
    assert np.bincount(y).tolist() == [200] * 10
    # White ink on black: the border is background.
    assert x[:, 0, :].float().mean() < 10 and x.float().mean() > 20
    a, _ = render_glyphs("07", per_class=5, seed=3)
    b, _ = render_glyphs("07", per_class=5, seed=3)
    c, _ = render_glyphs("07", per_class=5, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_glyph_knobs_change_the_images():
    base = dict(chars="0123456789", per_class=4, seed=0, rotation=0.0, stroke=0)
    plain, _ = render_glyphs(**base)
    changed = {
        "rotation": render_glyphs(**{**base, "rotation": 30.0})[0],
        "blur": render_glyphs(**base, blur=2.0)[0],
        "noise": render_glyphs(**base, noise=0.2)[0],
        "background": render_glyphs(**base, background=0.5)[0],
        "stroke": render_glyphs(**{**base, "stroke": 3})[0],
        "fonts": render_glyphs(**base, fonts=["cmr10"])[0],
    }
    for knob, images in changed.items():
        assert not torch.equal(images, plain), knob
    assert changed["stroke"].float().mean() > plain.float().mean() * 1.3
    assert (changed["blur"] == 255).sum() < (plain == 255).sum()
    assert abs(changed["background"][:, 0, 0].float().mean() - 0.5 * 255) < 2
    assert changed["noise"][:, 0, :].float().std() > 10 > plain[:, 0, :].float().std()
    grad, _ = render_glyphs(**base, background="gradient")
    assert (grad[:, 0, 0].float() - grad[:, -1, -1].float()).abs().mean() > 5


def test_glyph_lowres_is_digits_like():
    small, _ = render_glyphs(per_class=20, size=8, lowres=8, noise=0.05, background="random")
    levels = set(small.unique().tolist())
    assert len(levels) <= 17 and levels <= {round(k * 255 / 16) for k in range(17)}
    assert len(set(render_glyphs(per_class=20, size=8)[0].unique().tolist())) > 17
    # Like sklearn's digits, the glyph fills the 8x8 box from top to bottom.
    assert (small[:, 0, :].amax(1) > 0).float().mean() > 0.9 and (small[:, -1, :].amax(1) > 0).float().mean() > 0.9
    up, _ = render_glyphs(per_class=20, size=32, lowres=8)
    assert up.shape[1:] == (32, 32) and not torch.equal(up, render_glyphs(per_class=20)[0])


def test_glyph_errors_and_fonts():
    assert "DejaVuSans" in font_names() and "cmsy10" not in font_names() and "LastResortHE-Regular" not in font_names()
    assert not any(n.startswith("cm") for n in font_names("+-"))  # TeX encodings draw other symbols there
    with pytest.raises(ValueError, match="Did you mean"):
        render_glyphs(fonts=["DejaVuSanz"])
    with pytest.raises(ValueError, match="repeated"):
        render_glyphs("00")
    with pytest.raises(ValueError, match="lowres"):
        render_glyphs(size=8, lowres=16)
    x, _ = render_glyphs("A", per_class=2, fonts=["DejaVuSerif*"])
    assert x.shape == (2, 32, 32)


# --- your own files ---------------------------------------------------------------------------


def test_from_folder_lazy_images(tmp_path):
    root = _png_folder(tmp_path / "pets", {"cat": 10, "dog": 10})
    (root / ".ipynb_checkpoints").mkdir()
    data = ft.from_folder(root)
    assert data.classes == ["cat", "dog"] and data.name == "pets"
    assert all(isinstance(p, str) and p.endswith(".png") for p in data.train.inputs)
    x, y = data.train[0]
    assert x.shape == (3, 10, 12) and 0 <= x.min() and x.max() <= 1  # native size, [0, 1]
    train, val, test = _ids(data)
    assert not (train & val or train & test or val & test) and len(train | val | test) == 20
    prepared = ft.from_folder(root, TINY, augment="light")
    assert prepared.train[0][0].shape == (1, 32, 32) and prepared.test[0][0].shape == (1, 32, 32)


def test_from_folder_rgb_to_grey_uses_luminance(tmp_path):
    root = _png_folder(tmp_path / "red", {"a": 3, "b": 3}, color=(255, 0, 0))
    card = dataclasses.replace(TINY, input_size=(1, 4, 4), mean=(0.0,), std=(1.0,))
    x, _ = ft.from_folder(root, card, val_size=0, test_size=2).train[0]
    assert torch.allclose(x, torch.full((1, 4, 4), 0.299), atol=1e-3)


def test_from_folder_with_train_and_val_folders(tmp_path):
    _png_folder(tmp_path / "bugs" / "train", {"ants": 6, "bees": 6})
    _png_folder(tmp_path / "bugs" / "val", {"ants": 4, "bees": 4})
    data = ft.from_folder(tmp_path / "bugs")
    assert len(data.train) == 12 and len(data.val) + len(data.test) == 8
    assert all("/train/" in p for p in data.train.inputs)
    assert all("/val/" in p for p in data.val.inputs + data.test.inputs)
    assert not set(data.val.inputs) & set(data.test.inputs)


def test_from_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No folder"):
        ft.from_folder(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(ValueError, match="no class sub-folders"):
        ft.from_folder(tmp_path / "flat")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    (tmp_path / "empty" / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="No images"):
        ft.from_folder(tmp_path / "empty")
    _png_folder(tmp_path / "half", {"a": 3})
    (tmp_path / "half" / "b").mkdir()
    with pytest.raises(ValueError, match="no images in .*: b"):
        ft.from_folder(tmp_path / "half")


def _write_csv(path, header, rows):
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_from_csv_string_and_number_labels(tmp_path):
    rows = [(f"review number {i}, with a comma", ["good", "bad", "meh"][i % 3]) for i in range(30)]
    data = ft.from_csv(_write_csv(tmp_path / "r.csv", ["text", "label"], rows), model=MINILM)
    assert data.classes == ["bad", "good", "meh"] and data.task == "text-classification"
    assert data.train.inputs[0].startswith("review number")
    item = data.train[0]
    assert data.classes[item["labels"]] == dict(rows)[data.train.inputs[0]]
    numbers = ft.from_csv(_write_csv(tmp_path / "n.csv", ["body", "stars"], [(f"t{i}", 1 + i % 5) for i in range(40)]),
                         text="body", label="stars")
    assert numbers.classes == ["1", "2", "3", "4", "5"]
    assert sorted(set(numbers.train.targets)) == [0, 1, 2, 3, 4]


def test_from_csv_regression_batches_float_labels(tmp_path):
    rows = [(f"text {i}", i / 7) for i in range(20)]
    data = ft.from_csv(_write_csv(tmp_path / "s.csv", ["text", "label"], rows), model=MINILM)
    assert data.task == "regression" and data.classes == []
    batch = data.train.collate_fn([data.train[0], data.train[1]])
    assert batch["labels"].dtype == torch.float32
    with pytest.raises(ValueError, match="regression"):
        ft.few_shot(data.train, 2)


def test_from_csv_missing_column_lists_the_columns(tmp_path):
    path = _write_csv(tmp_path / "x.csv", ["sentence", "label"], [("a", "x"), ("b", "y")])
    with pytest.raises(ValueError, match="'sentence', 'label'") as err:
        ft.from_csv(path)
    assert "text" in str(err.value) and "sentence" in str(err.value)
    with pytest.raises(FileNotFoundError):
        ft.from_csv(tmp_path / "missing.csv")


# --- online datasets, with no network ---------------------------------------------------------


@pytest.mark.parametrize("name", ONLINE)
def test_online_datasets_fail_fast_and_clearly_offline(name, monkeypatch, tmp_path):
    monkeypatch.setenv("FTKIT_HOME", str(tmp_path))
    monkeypatch.setattr(DS, "network_available", lambda *args, **kwargs: False)
    start = time.perf_counter()
    with pytest.raises(ft.DataUnavailableError, match="bbc-news") as err:
        ft.load_dataset(name)
    assert time.perf_counter() - start < 5
    assert isinstance(err.value, RuntimeError)
    assert not ft.list_datasets()[list(DS._DATASETS).index(name)]["offline"]


def test_failed_downloads_become_data_unavailable(monkeypatch, tmp_path):
    import torchvision.datasets.cifar

    monkeypatch.setenv("FTKIT_HOME", str(tmp_path))
    monkeypatch.setattr(DS, "network_available", lambda *args, **kwargs: True)

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", refuse)
    monkeypatch.setattr(DS.urllib.request, "urlopen", refuse)
    for name in ("cifar10", "hymenoptera"):
        with pytest.raises(ft.DataUnavailableError, match="no network in tests"):
            ft.load_dataset(name)
    assert not (tmp_path / "data" / "hymenoptera_data").exists()  # a failed download does not look cached


def test_hymenoptera_from_the_cache_needs_no_network(monkeypatch, tmp_path):
    monkeypatch.setenv("FTKIT_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("the cached folder must be used without touching the network")

    monkeypatch.setattr(DS, "network_available", no_network)
    monkeypatch.setattr(DS.urllib.request, "urlopen", no_network)
    cached = tmp_path / "data" / "hymenoptera_data"
    _png_folder(cached / "train", {"ants": 5, "bees": 4})
    _png_folder(cached / "val", {"ants": 3, "bees": 3})
    assert ft.list_datasets()[list(DS._DATASETS).index("hymenoptera")]["offline"]
    data = ft.load_dataset("hymenoptera", TINY)
    assert data.classes == ["ants", "bees"] and len(data.train) == 9 and len(data.val) + len(data.test) == 6
    train, val, test = _ids(data)
    assert not (train & val or train & test or val & test)
    assert data.train[0][0].shape == (1, 32, 32)
