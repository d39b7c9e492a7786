"""What lesson 11 relies on from the library: the shipped example data, how ``from_folder`` and ``from_csv``
prepare it, the errors bad inputs give, and the saved checkpoint the lesson reloads.

The lesson shows one error message (a CSV whose columns are not named ``text`` and ``label``); the other bad
inputs a learner's own data may have are checked here: a folder with one class, a CSV with no label column or
an empty label, a file that is not an image.
"""
import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ftkit as ft
from ftkit.data.examples import EXAMPLES

pytestmark = pytest.mark.usefixtures("one_thread")

HANDWRITTEN = ft.example_data("handwritten")
MESSAGES = ft.example_data("messages")
CLASSES = ["eight", "five", "nine", "three"]


# --- the shipped examples -----------------------------------------------------------------------


def test_examples_are_inside_the_package_small_and_documented():
    folder = Path(ft.__file__).parent / "data" / "examples"
    assert HANDWRITTEN.parent == folder and MESSAGES.parent == folder
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 1_000_000, total
    readme = (folder / "README.md").read_text()
    for needed in ("CC BY 4.0", "load_digits", "Alpaydin", "Written for ftkit", "MIT"):
        assert needed in readme, needed
    assert set(EXAMPLES) == {"handwritten", "messages"}


def test_the_image_example_is_four_balanced_classes_of_pngs_in_sizes_unlike_the_models():
    files = {d.name: sorted(d.glob("*.png")) for d in HANDWRITTEN.iterdir() if d.is_dir()}
    assert sorted(files) == CLASSES
    assert all(len(paths) == 40 for paths in files.values())
    sizes = Counter(Image.open(p).size for paths in files.values() for p in paths)
    assert set(sizes) == {(40, 40), (48, 48), (64, 64)}  # several sizes, none the 32x32 glyph-resnet reads
    assert {Image.open(p).mode for paths in files.values() for p in paths} == {"L"}


def test_the_image_example_is_the_sklearn_digits_it_says_it_is():
    from sklearn.datasets import load_digits

    digits = load_digits()
    for name, digit in (("three", 3), ("nine", 9)):
        first = Image.open(HANDWRITTEN / name / f"{name}_00.png")
        small = torch.tensor(np.asarray(first.resize((8, 8), Image.BILINEAR)), dtype=torch.float32)
        original = torch.tensor(digits.images[(digits.target == digit).nonzero()[0][0]] * 255 / 16,
                                dtype=torch.float32)
        assert (small - original).abs().mean() < 40  # the same digit, enlarged and shrunk back (0-255 scale)
        other = torch.tensor(digits.images[(digits.target == digit).nonzero()[0][5]] * 255 / 16, dtype=torch.float32)
        assert (small - original).abs().mean() < (small - other).abs().mean()


def test_the_text_example_is_ninety_messages_in_three_balanced_teams():
    with open(MESSAGES, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["message", "team"]
    assert Counter(r["team"] for r in rows) == {"billing": 30, "delivery": 30, "technical": 30}
    assert len({r["message"] for r in rows}) == 90
    assert not any(re.search(r"@|\d{6,}", r["message"]) for r in rows)  # no e-mail addresses or long numbers


def test_example_data_names_the_examples_when_asked_for_another():
    with pytest.raises(ValueError, match="'handwritten', 'messages'"):
        ft.example_data("cats")


# --- what the lesson's workflow does with them --------------------------------------------------------


def test_from_folder_resizes_every_size_to_the_models_input_and_splits_as_the_lesson_says():
    data = ft.from_folder(HANDWRITTEN, "glyph-resnet", val_size=0.2, test_size=0.2, seed=0)
    assert data.classes == CLASSES
    assert (len(data.train), len(data.val), len(data.test)) == (96, 32, 32)
    assert Counter(data.train.targets) == {i: 24 for i in range(4)}  # stratified: 24 per class
    sizes = {Image.open(data.train.inputs[i]).size for i in range(len(data.train))}
    assert len(sizes) == 3
    assert {tuple(data.train[i][0].shape) for i in range(len(data.train))} == {(1, 32, 32)}
    rgb = ft.from_folder(HANDWRITTEN, ft.get_card("resnet18"), val_size=0.2, test_size=0.2)  # a card: no download
    assert tuple(rgb.train[0][0].shape) == (3, 224, 224)


def test_from_csv_reads_the_example_with_its_column_names_and_refuses_the_defaults():
    with pytest.raises(ft.DataError, match=r"no column 'text'.*'message', 'team'.*text='\.\.\.'"):
        ft.from_csv(MESSAGES)
    texts = ft.from_csv(MESSAGES, text="message", label="team", model="minilm-l6", val_size=0.2, test_size=0.2)
    assert texts.classes == ["billing", "delivery", "technical"]
    assert (len(texts.train), len(texts.val), len(texts.test)) == (54, 18, 18)
    assert max(len(ids) for ids in texts.train.encodings) <= 32  # short messages: cheap for MiniLM


def test_freeze_leaves_only_the_new_head_training_as_the_lessons_ten_lines_say():
    model = ft.load_model("glyph-resnet", num_classes=4)
    ft.freeze(model)
    head = model.get_submodule(ft.head_name(model))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in head.parameters()}


def test_a_saved_checkpoint_reloads_into_a_fresh_model_with_the_same_predictions(tmp_path):
    data = ft.from_folder(HANDWRITTEN, "glyph-resnet", val_size=0.2, test_size=0.2)
    model = ft.load_model("glyph-resnet", num_classes=4)
    ft.freeze(model)
    ft.fit(model, data.train, epochs=1, lr=3e-3, seed=0, progress=False)
    saved = ft.save_checkpoint(model, tmp_path / "digits.safetensors", classes=data.classes, model_name="glyph-resnet")
    meta = ft.checkpoint_info(saved)
    assert meta["state"] == {"classes": CLASSES, "model_name": "glyph-resnet"}
    fresh = ft.load_model("glyph-resnet", num_classes=4, pretrained=False)
    ft.load_checkpoint(saved, fresh)
    assert torch.equal(ft.predict(fresh, data.test).outputs, ft.predict(model, data.test).outputs)


# --- bad inputs give clear errors ---------------------------------------------------------------


def _copy_classes(root: Path, names) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        for p in sorted((HANDWRITTEN / name).glob("*.png"))[:10]:
            (root / name / p.name).write_bytes(p.read_bytes())
    return root


def test_a_folder_with_one_class_stops_with_an_error_that_names_the_problem(tmp_path):
    with pytest.raises(ft.DataError, match=r"one class sub-folder \('three'\).*at least two classes.*Add a sub-folder"):
        ft.from_folder(_copy_classes(tmp_path / "only_threes", ["three"]), "glyph-resnet")


def test_a_csv_with_one_label_stops_with_an_error_that_names_the_problem(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "".join(f"message {i},billing\n" for i in range(20)))
    with pytest.raises(ft.DataError, match=r"Every row of one.csv has the same 'label' \('billing'\).*two classes"):
        ft.from_csv(path, model="minilm-l6")


def test_a_csv_keeps_the_first_max_length_tokens(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("text,label\n" + "".join(f"{'word ' * 60}{i},{'ab'[i % 2]}\n" for i in range(20)))
    short = ft.from_csv(path, model="minilm-l6", max_length=16)
    assert {len(item["input_ids"]) for item in short.train} == {16}
    assert max(len(item["input_ids"]) for item in ft.from_csv(path, model="minilm-l6").train) > 16
    with pytest.raises(ValueError, match="from_csv\\('long.csv'\\) got no model"):
        ft.from_csv(path, max_length=16)


def test_a_csv_without_a_label_column_lists_the_columns_and_says_what_to_pass(tmp_path):
    path = tmp_path / "no_label.csv"
    path.write_text("message,date\nMy parcel is late,2024-01-02\nI was charged twice,2024-01-03\n")
    with pytest.raises(ft.DataError, match=r"no column 'label' \(the label column\). Its columns: 'message', 'date'"
                                           r".*label='\.\.\.'"):
        ft.from_csv(path, text="message")


def test_a_csv_with_an_empty_label_names_its_line(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("text,label\nfirst,a\nsecond,\nthird,b\n")
    with pytest.raises(ft.DataError, match=r"empty 'label' on line\(s\) \[3\]"):
        ft.from_csv(path)


def test_a_file_that_is_not_an_image_is_skipped_with_a_warning_that_names_it(tmp_path):
    root = _copy_classes(tmp_path / "photos", ["three", "five"])
    (root / "five" / "notes.png").write_text("not an image")
    with pytest.warns(UserWarning, match=r"Skipped 1 file.*five/notes\.png"):
        data = ft.from_folder(root)
    assert len(data.train) + len(data.val) + len(data.test) == 20
