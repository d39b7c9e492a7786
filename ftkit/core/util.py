"""Small helpers shared by several modules: cache folders, name suggestions, tables."""
from __future__ import annotations

import ctypes
import difflib
import html
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence


def cache_dir(*parts: str) -> Path:
    """The folder where ftkit keeps downloads and results: ``$FTKIT_HOME`` or ``~/.cache/ftkit``."""
    root = Path(os.environ.get("FTKIT_HOME") or Path.home() / ".cache" / "ftkit")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def suggest(name: str, options: Iterable[str]) -> str:
    """' Did you mean ...?' with the closest options, or '' when nothing is close."""
    close = difflib.get_close_matches(name.lower(), [o.lower() for o in options], n=3, cutoff=0.5)
    lookup = {o.lower(): o for o in options}
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(lookup[c]) for c in close) + "?"


class Table:
    """A list of rows (dicts) that prints as text and renders as HTML in a notebook.

    It is deliberately plain: ``table.rows`` is a list of dicts, ready for pandas
    (``pd.DataFrame(table.rows)``) or ``json.dumps``.
    """

    def __init__(self, rows: Sequence[dict], title: str = "", footer: str = ""):
        self.rows = list(rows)
        self.title = title
        self.footer = footer

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.rows:
            cols += [k for k in row if k not in cols]
        return cols

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    @staticmethod
    def _fmt(value) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    def __str__(self) -> str:
        cols = self.columns
        cells = [[self._fmt(r.get(c)) for c in cols] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        line = lambda vals: "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(vals, widths))
        out = [self.title] if self.title else []
        out += [line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells]
        if self.footer:
            out.append(self.footer)
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cols = self.columns
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(self._fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
            for r in self.rows
        )
        title = f"<b>{html.escape(self.title)}</b>" if self.title else ""
        foot = f"<div>{html.escape(self.footer)}</div>" if self.footer else ""
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}"


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).replace("%", "").lstrip("-").isdigit()


_REACHABLE: dict[tuple[str, int], bool] = {}


def network_available(host: str = "huggingface.co", port: int = 443, timeout: float = 2.0) -> bool:
    """Can we open a connection to ``host``? Answers within ``timeout`` seconds, never hangs.

    Name lookups have no timeout of their own, so the check runs in a daemon thread.
    The answer is remembered for the rest of the process.
    """
    import socket
    import threading

    key = (host, port)
    if key in _REACHABLE:
        return _REACHABLE[key]
    if os.environ.get("HF_HUB_OFFLINE") == "1" and host == "huggingface.co":
        return False
    result = [False]

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    _REACHABLE[key] = result[0]
    return result[0]


def release_memory() -> None:
    """Return freed memory to the operating system (glibc keeps freed blocks otherwise).

    After training, the optimizer's state and the activations are freed, but glibc's
    allocator keeps the pages: a notebook's kernel then holds hundreds of MB it does not use,
    which matters under Binder's 2 GB. ``malloc_trim`` hands them back (milliseconds).
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
            pass
