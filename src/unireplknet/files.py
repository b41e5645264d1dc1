"""Atomic file writes, strict JSON, the cleanup of what interrupted writes leave, OS errors in one line.

Every file this package writes goes first to a hidden temporary file beside it (``.NAME.tmp`` or
``.NAME.<random>.tmp``) that is renamed over ``NAME`` only once complete, so a crash leaves the old
file or none, never one that looks finished. A crash (``kill -9``, power loss) can leave the
temporary file itself; :func:`remove_stale_temp_files` deletes those when the next run, resume or
export of the same output starts.

JSON is written strictly: a non-finite number (NaN, inf) becomes ``null``, never the bare ``NaN`` /
``Infinity`` that Python's ``json`` emits by default and other readers reject.
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "finite_json",
    "to_json",
    "check_output_path",
    "temp_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_stale_temp_files",
    "describe_os_error",
]


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def to_json(value: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (non-finite numbers as null)."""
    return json.dumps(finite_json(value), allow_nan=False, **kwargs)


def check_output_path(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """Fail early (ValueError naming the culprit) when ``path`` cannot be written because a part of it
    is a regular file, or, for a file (``folder=False``), because ``path`` is a folder."""
    path = Path(path)
    for parent in [path, *path.parents] if folder else path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"cannot write {path}: {parent} is a file, not a folder; choose another path")
    if not folder and path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    return path


def temp_path(path: str | os.PathLike) -> Path:
    """The hidden temporary file ``.NAME.tmp`` beside ``path`` that an atomic write of it goes through."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`temp_path` (flushed to disk, then renamed over ``path``).

    On any failure (a full disk, a missing folder) the temporary file is removed and the error raised.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, str(tmp)):
            raise OSError(e.errno, e.strerror, str(path)) from None  # name the file the caller asked for
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Render a matplotlib figure to PNG in memory and :func:`atomic_write_bytes` it (the figure is left open)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig_kwargs)
    return atomic_write_bytes(path, buffer.getvalue())


def _is_temp_of(file: str, names: Iterable[str] | None) -> bool:
    if names is None:  # any temporary file of this package (the folder is the run's own)
        return file.startswith(".") and file.endswith(".tmp")
    return any(
        file in (f".{name}.tmp", f"{name}.tmp") or (file.startswith(f".{name}.") and file.endswith(".tmp"))
        for name in names
    )


def remove_stale_temp_files(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporary files that interrupted writes left in ``folder``; returns what was removed.

    Args:
        folder: the folder to clean (nothing happens if it does not exist).
        names: the outputs whose temporary files to remove (``["m.onnx"]`` removes ``.m.onnx.tmp``,
            ``.m.onnx.<random>.tmp`` and the older ``m.onnx.tmp``); None removes every hidden ``.*.tmp``
            file, for folders that belong to one run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = list(names) if names is not None else None
    removed = []
    for entry in folder.iterdir():
        if entry.is_file() and _is_temp_of(entry.name, names):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


_HINTS = {
    errno.ENOSPC: "free some space or write to another location",
    errno.EDQUOT: "free some space or write to another location",
    errno.EFBIG: "the file is larger than this system allows (file size limit); write to another location",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "the path is a folder; give a file name",
    errno.EACCES: "no permission; choose a location you can write to",
    errno.EPERM: "no permission; choose a location you can write to",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOENT: "check the path",
}


def describe_os_error(error: OSError) -> str:
    """One line for an OS error: what failed, on which file, and what to do about it."""
    reason = error.strerror or str(error) or type(error).__name__
    target = f": {error.filename}" if error.filename else ""
    if error.filename2:
        target += f" -> {error.filename2}"
    hint = _HINTS.get(error.errno if error.errno is not None else -1)
    return f"{reason}{target}" + (f"; {hint}" if hint else "")
