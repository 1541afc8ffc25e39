"""Write a file atomically without following links anyone planted in the output folder.

The content goes to a fresh private folder made with `mkdtemp` (unique name, mode 0700, created
exclusively) inside the target's folder; the file in it is created with O_CREAT|O_EXCL|O_NOFOLLOW; then
`os.replace` moves it over the target. `os.replace` replaces a symlink at the target path with the new
file instead of writing through it, so a link planted at `OUT/<task>.jsonl` or `report.html` never
redirects a write outside the folder, and a reader never sees a half-written file.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from refinelab.errors import DataError

NOT_REGULAR = "is not a regular file (a folder, a named pipe or a device); refusing to read it"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(OSError):
    """The target cannot be written safely (it is a directory or another non-regular file)."""


def _check_target(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        return  # replaced (not followed) by os.replace below
    if not stat.S_ISREG(mode):
        raise UnsafePathError(f"{path}: exists and is not a regular file; refusing to replace it")


def open_exclusive(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> IO:
    """Create `path` exclusively (fails if anything, link included, is already there) and open it."""
    fd = os.open(path, _FLAGS, 0o644)
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding=encoding)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` to produce the content at a temporary path nobody else can touch, then move it
    over `path`. `write` may create the file itself (pyarrow, say) or open it with `open_exclusive`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_target(path)
    private = Path(tempfile.mkdtemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent))
    try:
        tmp = private / "content"
        write(tmp)
        if os.path.islink(tmp) or not tmp.is_file():
            raise UnsafePathError(f"{path}: the temporary file was replaced; refusing to move it into place")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    def write(tmp: Path) -> None:
        with open_exclusive(tmp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def open_append(path: str | Path, encoding: str = "utf-8") -> IO:
    """Open `path` for appending, refusing to follow a symlink at the final component."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePathError(f"{path}: is a symbolic link; refusing to append through it") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(f"{path}: not a regular file; refusing to append to it")
    return os.fdopen(fd, "a", encoding=encoding)


def open_regular(path: str | Path) -> IO[bytes]:
    """Open `path` for reading (links followed) when it is a regular file; a one-line DataError naming it
    when it is anything else. Why: opening a named pipe for reading waits for a writer that never comes, so
    a FIFO planted in a run folder or a prompt folder (`trace.jsonl`, `report.json`, a prompt's YAML) hung
    the command that read it. The file is opened without blocking and checked on the open descriptor, so
    it cannot be swapped for a pipe between the check and the read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(str(path), None, None, NOT_REGULAR)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
