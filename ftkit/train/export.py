"""Export a trained model to one file that serving code runs without its Python class: ONNX or torch.export.

A checkpoint (``ft.save_checkpoint``) holds weights: to use it you need the model's code.
An *exported* model holds the computation too, as a graph of standard operations, so a
server can run it without ftkit, without the model's class, and (for ONNX) without PyTorch.

| format | file | runs with | loading runs code from the file? |
|---|---|---|---|
| ``"onnx"`` | ``.onnx`` | ONNX Runtime (``pip install onnx onnxscript onnxruntime``), in C++, C#, Java, JS, Python | no: a protobuf graph and its weights |
| ``"torch"`` | ``.pt2`` | PyTorch alone (``torch.export.save`` / ``torch.export.load``) | parts may be unpickled: load only files you trust |

Both are made by ``torch.export`` (the graph is traced once on an example batch), with the
batch size left free, so the file takes any number of items. ``load_exported`` returns a
callable that takes tensors or NumPy arrays and gives back the model's outputs (its logits)
as a tensor, with the ``metadata`` saved beside the graph (class names, normalisation...).

Example:
    >>> x = torch.stack([data.test[i][0] for i in range(8)])  # doctest: +SKIP
    >>> ft.export_model(model, x, "digits.onnx", metadata={"classes": data.test.classes})  # doctest: +SKIP
    >>> run = ft.load_exported("digits.onnx")  # doctest: +SKIP
    >>> run(x).argmax(1)  # doctest: +SKIP
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import CheckpointError
from ..core.io import atomic_write
from .checkpoint import _is_pickle

FORMATS = {".onnx": "onnx", ".pt2": "torch"}
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
PIP_ONNX = "pip install onnx onnxscript onnxruntime"
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
               "tensor(double)": np.float64, "tensor(int32)": np.int32}
_META_KEY = "ftkit"  # ONNX metadata_props key / .pt2 extra file holding the JSON metadata


def export_model(model: nn.Module, example: Any, path: str | os.PathLike, *, format: str | None = None,
                 metadata: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Export ``model`` as traced on ``example`` (one batch, as the model takes it) to ``path``; return the path.

    Args:
        model: any ``nn.Module``; it is exported in eval mode (dropout off, BatchNorm's running
            statistics) and left in the mode it had. Hugging Face models export their ``logits``.
        example: a batch of inputs: a tensor ``[batch, ...]`` (images), a tuple of tensors, or a
            dict of tensors such as a tokenizer's ``input_ids`` and ``attention_mask`` (texts; a
            ``labels`` entry is ignored). The batch size stays free in the file (and a text's length).
        path: ``.onnx`` or ``.pt2``; the format follows the suffix unless ``format`` says it.
        format: ``"onnx"`` (needs ``pip install onnx onnxscript onnxruntime``) or ``"torch"``.
        metadata: JSON-able values stored in the file (e.g. ``classes``, ``mean``, ``std``);
            ``load_exported(path).metadata`` gives them back.
        overwrite: replace an existing file (otherwise that is an error).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        TypeError, ValueError: a bad path, format or example.
        ImportError: the ONNX packages are missing (the message gives the pip command).

    Example:
        >>> ft.export_model(model, x[:8], "model.onnx", metadata={"classes": data.test.classes})  # doctest: +SKIP
        >>> ft.export_model(model, x[:8], "model.pt2")               # PyTorch only, no extra packages  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_model(model, example, path) exports an nn.Module; got {type(model).__name__} first.")
    path = Path(path)
    format = _format(path, format)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as {path / ('model' + path.suffix)}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists already. Choose another name, or pass overwrite=True to replace it.")
    if format == "onnx":
        _require_onnx()
    try:
        meta = json.dumps(dict(metadata or {}))
    except TypeError as err:  # before the slow export, not after it
        raise TypeError(f"metadata must hold JSON values only (numbers, strings, lists, dicts): {err}. Turn "
                        "tensors into lists (t.tolist()) and other objects into strings.") from err
    names, inputs = _inputs(example)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = tuple(t.to(device) for t in inputs)
    wrapped = _Outputs(model, names)
    was_training = model.training
    wrapped.eval()  # and so the model: dropout off, BatchNorm's running statistics
    try:
        with torch.no_grad():
            try:
                reference = wrapped(*inputs)
            except Exception as err:
                raise ValueError(f"The model could not run on the example ({type(err).__name__}: {err}). Give one "
                                 "batch exactly as the model takes it, e.g. torch.stack([data.test[i][0] for i in "
                                 "range(8)]) for images, or a tokenizer's output (a dict of tensors) for texts.") from err
        if not torch.is_tensor(reference):
            raise ValueError(f"The model returned {type(reference).__name__}, not a tensor (or an output with "
                             ".logits): export a module whose forward returns a tensor.")
        dynamic = _dynamic_shapes(names, inputs)
        if format == "onnx":
            _export_onnx(wrapped, inputs, names, dynamic, path, meta)
        else:
            program = torch.export.export(wrapped, inputs, dynamic_shapes=dynamic)
            buffer = io.BytesIO()  # torch.export.save wants a .pt2 name: write to memory, then atomically to disk
            torch.export.save(program, buffer, extra_files={_META_KEY: meta})
            atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    finally:
        model.train(was_training)
    return path


class Exported:
    """An exported model, loaded: call it on a batch (tensors or NumPy arrays) to get its outputs as a tensor.

    Attributes:
        path: the file; format: ``"onnx"`` or ``"torch"``; input_names: what it takes, in order;
        metadata: what ``export_model(metadata=...)`` stored.
    """

    def __init__(self, path: Path, format: str, run, input_names: list[str], metadata: dict):
        self.path, self.format, self._run, self.input_names, self.metadata = path, format, run, input_names, metadata

    def __call__(self, *inputs, **named) -> torch.Tensor:
        if named:
            unknown = [k for k in named if k not in self.input_names and k != "labels"]
            if unknown or inputs:
                raise TypeError(f"{self.path.name} takes {self.input_names}; got {list(named)}"
                                f"{' and positional inputs' if inputs else ''}.")
            inputs = tuple(named[k] for k in self.input_names)
        if len(inputs) != len(self.input_names):
            raise TypeError(f"{self.path.name} takes {len(self.input_names)} input(s) {self.input_names}; "
                            f"got {len(inputs)}.")
        return self._run([_as_tensor(x, name) for x, name in zip(inputs, self.input_names)])

    def __repr__(self) -> str:
        return f"Exported({self.path.name!r}, format={self.format!r}, inputs={self.input_names})"


def load_exported(path: str | os.PathLike, *, trusted: bool = False, threads: int | None = None) -> Exported:
    """Load a file made by ``export_model``: a callable that runs it (ONNX Runtime, or PyTorch for ``.pt2``).

    Args:
        path: an ``.onnx`` or ``.pt2`` file.
        trusted: needed for ``.pt2``: ``torch.export.load`` may unpickle parts of the file,
            and unpickling can run code, so say that you made the file or trust who did.
            ONNX files are a protobuf graph: loading one runs no code from it.
        threads: ONNX Runtime's threads (None: its default, every core).

    Example:
        >>> run = ft.load_exported("model.onnx")  # doctest: +SKIP
        >>> probabilities = run(x).softmax(1)  # doctest: +SKIP
    """
    path = Path(path)
    format = _format(path, None)
    if not path.is_file():
        raise FileNotFoundError(f"No exported model at {path}. Make one with ft.export_model(model, example, path).")
    if format == "onnx":
        if _is_pickle(path):
            raise CheckpointError(f"{path} is a pickle file (as torch.save writes), not an ONNX graph. Export the "
                                  "model with ft.export_model(model, example, 'model.onnx').")
        return _load_onnx(path, threads)
    if not trusted:
        raise CheckpointError(f"{path} is a torch.export file (.pt2). Loading it may unpickle parts of it, and "
                              "unpickling can run any code the file holds. If you made it or trust who did, pass "
                              "trusted=True; to serve files from elsewhere, use ONNX (.onnx), which runs no code.")
    extra = {_META_KEY: ""}
    program = torch.export.load(str(path), extra_files=extra)
    module = program.module()
    names = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    dtypes = [getattr(nodes[name].meta.get("val"), "dtype", None) for name in names]

    def run(tensors):
        # The traced dtypes, as ONNX Runtime would insist on: float64 arrays become float32.
        tensors = [t if d is None else t.to(d) for t, d in zip(tensors, dtypes)]
        with torch.no_grad():
            return module(*tensors)

    return Exported(path, "torch", run, names, json.loads(extra[_META_KEY] or "{}"))


# --- helpers ------------------------------------------------------------------------------


class _Outputs(nn.Module):
    """The model with positional inputs (named ones for a dict example) and a tensor output (HF: ``.logits``)."""

    def __init__(self, model: nn.Module, names: list[str] | None):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs):
        out = self.model(**dict(zip(self.names, inputs))) if self.names else self.model(*inputs)
        out = getattr(out, "logits", out)
        return out[0] if isinstance(out, (tuple, list)) else out


def _format(path: Path, format: str | None) -> str:
    by_suffix = FORMATS.get(path.suffix.lower())
    if format is not None and format not in FORMATS.values():
        raise ValueError(f"format must be 'onnx' or 'torch', got {format!r}.")
    if by_suffix is None:
        hint = f" for format {format!r}" if format else ""
        raise ValueError(f"{path.name}: name the file .onnx (ONNX) or .pt2 (torch.export){hint}; got "
                         f"{path.suffix or 'no suffix'!r}.")
    if format is not None and format != by_suffix:
        raise ValueError(f"format={format!r} but {path.name} ends in {path.suffix}: use "
                         f"{path.with_suffix('.onnx' if format == 'onnx' else '.pt2').name}.")
    return by_suffix


def _require_onnx() -> None:
    missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(f"ONNX export and inference need {', '.join(missing)}, which is not installed. Install "
                          f"them with:  {PIP_ONNX}   (or export to .pt2, which needs PyTorch only).")


def _inputs(example: Any) -> tuple[list[str] | None, tuple[torch.Tensor, ...]]:
    """Input names (None for positional inputs) and the tensors, each a batch of at least 2."""
    if torch.is_tensor(example):
        names, tensors = None, (example,)
    elif isinstance(example, Mapping):
        names = [k for k in example if k != "labels"]
        tensors = tuple(example[k] for k in names)
    elif isinstance(example, (tuple, list)) and example:
        names, tensors = None, tuple(example)
    else:
        raise TypeError(f"example must be a batch: a tensor, a tuple of tensors or a dict of tensors; got "
                        f"{type(example).__name__}. For one image x, give x[None] (a batch of one).")
    bad = [i for i, t in enumerate(tensors) if not torch.is_tensor(t)]
    if bad:
        raise TypeError(f"example's input(s) {[names[i] if names else i for i in bad]} are not tensors "
                        f"({[type(tensors[i]).__name__ for i in bad]}); give tensors, e.g. torch.as_tensor(x).")
    if any(t.ndim == 0 for t in tensors):
        raise ValueError("example must be a batch, [batch, ...]; got a 0-d tensor.")
    sizes = {t.shape[0] for t in tensors}
    if len(sizes) > 1:
        raise ValueError(f"example's inputs have different batch sizes {sorted(sizes)}; they must agree.")
    if sizes == {1}:  # a dimension of size 1 is traced as a constant 1: trace on two copies instead
        tensors = tuple(torch.cat([t, t]) for t in tensors)
    return names, tensors


def _dynamic_shapes(names, inputs):
    """The batch dimension free in every input; for texts (2-d token inputs) the length too."""
    batch = torch.export.Dim("batch")
    shapes = []
    for t in inputs:
        dims = {0: batch}
        if t.ndim == 2 and not t.is_floating_point():  # token ids, masks: their length varies too
            dims[1] = torch.export.Dim.AUTO
        shapes.append(dims)
    return (tuple(shapes),)  # one entry: forward(*inputs) takes them as one varargs tuple


def _export_onnx(wrapped, inputs, names, dynamic, path: Path, meta: str) -> None:
    input_names = names or (["input"] if len(inputs) == 1 else [f"input{i}" for i in range(len(inputs))])
    with warnings.catch_warnings():  # one Dim shared by several inputs' batch axes: a harmless notice
        warnings.filterwarnings("ignore", message="# The axis name")
        program = torch.onnx.export(wrapped, inputs, None, dynamo=True, dynamic_shapes=dynamic, verbose=False,
                                    input_names=input_names, output_names=["output"])
    program.model.metadata_props[_META_KEY] = meta
    large = sum(p.numel() * p.element_size() for p in wrapped.parameters()) > 1.5e9  # protobuf's 2 GB limit
    if large:  # the weights go to a file beside the graph, named after it: write in place
        program.save(str(path), external_data=True)
    else:
        atomic_write(path, lambda tmp: program.save(str(tmp), external_data=False))


def _load_onnx(path: Path, threads: int | None) -> Exported:
    _require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable ONNX model ({type(err).__name__}: {err}). It may be "
                              "truncated or corrupted: export it again.") from err
    names = [i.name for i in session.get_inputs()]
    types = [_ONNX_TYPES.get(i.type) for i in session.get_inputs()]
    meta = session.get_modelmeta().custom_metadata_map.get(_META_KEY, "{}")

    def run(tensors):
        # ONNX Runtime takes exactly the traced dtypes: float64 arrays become float32, int32 ids int64.
        feed = {name: t.detach().cpu().numpy().astype(dtype or t.detach().cpu().numpy().dtype, copy=False)
                for name, t, dtype in zip(names, tensors, types)}
        return torch.from_numpy(session.run(None, feed)[0])

    return Exported(path, "onnx", run, names, json.loads(meta))


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"Input {name!r} must be a tensor or a NumPy array; got {type(x).__name__}.")
