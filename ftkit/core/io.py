"""Files that are either whole or absent: write beside the target, flush to disk, then rename.

A checkpoint, an adapter or a result written while the power fails, the disk fills or the
learner presses Stop must never be left half-written under its real name. ``atomic_write``
writes a temporary file in the same folder, forces its bytes to disk, renames it over the
target (atomic on POSIX and Windows) and forces the rename itself to disk; on any error the
temporary file is removed and the target is as it was.

Example:
    >>> atomic_write(Path("notes.txt"), lambda tmp: tmp.write_text("hello"))  # doctest: +SKIP
    >>> atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))       # safetensors  # doctest: +SKIP
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def atomic_write(target: str | os.PathLike, write: Callable[[Path], object], *, mode: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``target``, then move it into place; return ``target``.

    ``mode`` sets the file's permissions (otherwise they are whatever ``write`` gives the file).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The name is chosen before the file exists, so that Ctrl-C at any moment after it is created
    # finds it in the handler below (mkstemp creates the file before its name reaches us).
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, target)
    except BaseException:  # an error, or Ctrl-C at any moment: the target is as it was, no temporary file stays
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # and the rename itself survives a crash
        fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return target
