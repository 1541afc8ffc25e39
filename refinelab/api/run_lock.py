"""The per-folder lock: one process works on a run (or a working) folder at a time.

An exclusive `flock` on `FOLDER/.lock`, which records the holder's pid for the message the loser prints. The
kernel drops a `flock` when its process ends, even by SIGKILL, so a killed run never leaves its folder locked
and nothing has to clean up a stale lock file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from refinelab.errors import DataError, RefineLabError
from refinelab.run_layout import LOCK


class RunBusy(RefineLabError):
    """Another process holds the run folder."""

    def __init__(self, run_dir: Path, pid: int | None) -> None:
        self.run_dir, self.pid = run_dir, pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"run folder {run_dir} is in use by {holder}; wait for it to finish "
                         f"(or stop it) before starting another command on this folder")


class RunLock:
    """An exclusive, non-blocking lock on one run folder, released when the process ends (even by
    SIGKILL: the kernel drops the `flock`)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock and write this process's pid into it; RunBusy naming the holder if another has it.
        O_NOFOLLOW: a link planted as the lock file would make the pid write land elsewhere."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DataError(str(self.path), None, None, "is a symbolic link; refusing to use it") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise RunBusy(self.run_dir, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock, emptying the pid first so a later probe never names a process that has let go."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the process working on `run_dir` (0 when it has not written one yet), or None when none is:
    a shared, non-blocking probe of the run's lock that creates and writes nothing (`refinelab runs` lists
    folders it must not touch). A resume starting in the instant the probe holds the lock reads the folder as
    busy and says so; it is not harmed."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(run_dir / LOCK, flags)
    except OSError:  # never locked, or a link (which no run of ours holds)
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote into the lock file, for the message; None when unreadable or not yet written."""
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
