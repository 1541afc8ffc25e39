"""Run folders: which names are allowed, where they resolve, who holds them, and whether they are sound.

A run id is a folder name under the runs root and nothing else: a conservative character set, no
separators, no dot-names, so `--run-id ../x`, `/tmp/x` or `..` can never place (or overwrite) files
outside `--runs-dir`. A run folder is held by one process at a time (an exclusive `flock` on
`RUN/.lock`, which records the holder's pid for the message the loser prints). A run's identity (its
checkpoint thread) is stored inside the folder, so a renamed or copied folder resumes as itself.
`check_run_folder` inspects a folder from elsewhere read-only before anything opens it for writing,
so a damaged folder gets a one-line error and is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

from refinelab.atomic import NOT_REGULAR, open_regular
from refinelab.errors import ConfigError, DataError, RefineLabError, validation_problem, validation_problems

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
LOCK_NAME = ".lock"
MAX_BUDGET = 10**15  # tokens; far above any real run, far below SQLite's 64-bit integers
MAX_SETTINGS_BYTES = 1_000_000

# Files a run folder may hold that RefineLab opens; each must be a regular file (never a link).
SEAL_NAME = "settings.seal"
RUN_FILES = (SEAL_NAME, "settings.json", "store.sqlite", "ledger.sqlite", "checkpoints.sqlite", "trace.jsonl",
             "refined.jsonl", "changes.jsonl", "report.json", "report.html", LOCK_NAME,
             *(f"{db}.sqlite-{suffix}" for db in ("store", "ledger", "checkpoints") for suffix in ("wal", "shm",
                                                                                                "journal")))
SQLITE_FILES = {"store.sqlite": ("items", "meta"), "ledger.sqlite": ("calls", "meta"),
                "checkpoints.sqlite": ()}


class RunBusy(RefineLabError):
    """Another process holds the run folder."""

    def __init__(self, run_dir: Path, pid: int | None) -> None:
        self.run_dir, self.pid = run_dir, pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"run folder {run_dir} is in use by {holder}; wait for it to finish "
                         f"(or stop it) before starting another command on this folder")


def validate_run_id(run_id: str, what: str = "run id") -> str:
    """`run_id` if it is a safe folder name; ConfigError (exit 2) naming the problem otherwise."""
    if not isinstance(run_id, str) or not run_id:
        raise ConfigError(f"{what} is empty")
    if not RUN_ID_PATTERN.fullmatch(run_id) or run_id.endswith("."):
        raise ConfigError(
            f"{what} {run_id!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (no path separators, no '..', no spaces or control characters)")
    return run_id


def validate_budget(budget: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise ConfigError(f"the budget must be a whole number of tokens, got {budget!r}")
    if budget < 0:
        raise ConfigError(f"the budget must be >= 0, got {budget}")
    if budget > MAX_BUDGET:
        raise ConfigError(f"the budget {str(budget)[:30]}{'…' if len(str(budget)) > 30 else ''} is too large "
                          f"(at most {MAX_BUDGET:,} tokens)")
    return budget


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, if it lies inside `root` (resolved); ConfigError otherwise."""
    root_resolved = Path(os.path.realpath(root))
    resolved = Path(os.path.realpath(path))
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise ConfigError(f"{path} resolves to {resolved}, outside {root_resolved}")
    return resolved


def run_path(runs_dir: str | Path, run_id: str) -> Path:
    """The folder of run `run_id` under `runs_dir`, checked to stay inside it (a symlinked run folder
    pointing elsewhere is refused)."""
    validate_run_id(run_id)
    root = Path(runs_dir)
    path = root / run_id
    if path.is_symlink():
        raise ConfigError(f"run folder {path} is a symbolic link; refusing to use it")
    inside(root, path)
    return path


def run_identity(run_dir: Path) -> str | None:
    """The id a run was created with (its checkpoint thread), read from the store without writing. The
    store is untrusted: its meta value is parsed by the store's own reader (`store.json_column`, safeload),
    so bad or deeply nested JSON is a one-line DataError naming the store, `meta.value` and the row, not a
    RecursionError naming nothing; a value that is not text is refused the same way."""
    from refinelab.tools.store import json_column

    store = run_dir / "store.sqlite"
    if not store.exists():
        return None
    with _snapshot(store) as db:
        row = db.execute("SELECT value FROM meta WHERE key='run_id'").fetchone()
    if not row:
        return None
    value = json_column(row[0], store, "meta.value", "run_id")
    if value is not None and not isinstance(value, str):
        raise DataError(str(store), None, "meta.value", f"row 'run_id': expected text, got {type(value).__name__}; "
                        "the run folder is damaged or was edited")
    return value or None


# ------------------------------------------------------------------------------------ inspection

@contextlib.contextmanager
def _snapshot(path: Path) -> Any:
    """A connection to a private copy of `path` and its write-ahead log: a killed run's last writes are
    seen (SQLite replays the log in the copy) and the run folder itself is never touched."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="refinelab-check-") as tmp:
        copy = Path(tmp) / "db.sqlite"
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and not wal.is_symlink():
            shutil.copyfile(wal, copy.with_name("db.sqlite-wal"))
        db = sqlite3.connect(str(copy))
        try:
            yield db
        finally:
            db.close()


def check_sqlite(path: Path, tables: tuple[str, ...] = ()) -> None:
    """DataError (one line, naming the file) unless `path` is a sound SQLite database with `tables`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        raise DataError(str(path), None, None, "is empty (0 bytes): the run folder is damaged")
    try:
        with _snapshot(path) as db:
            result = db.execute("PRAGMA quick_check").fetchone()
            if not result or result[0] != "ok":
                raise DataError(str(path), None, None, f"database is corrupt ({str(result and result[0])[:120]})")
            have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise DataError(str(path), None, None, f"not a readable SQLite database ({exc}); the file is truncated "
                                               f"or corrupt") from None
    missing = [t for t in tables if t not in have]
    if missing:
        raise DataError(str(path), None, None, f"not a RefineLab run database (no table {missing[0]!r})")


def read_settings(path: Path) -> dict[str, Any]:
    """settings.json of a run folder, parsed defensively: one-line DataError for anything wrong."""
    from refinelab.safeload import loads_json

    try:
        with open_regular(path) as file:  # a pipe planted as settings.json would block a plain read
            raw = file.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        raise DataError(str(path), None, None, "missing: not a RefineLab run folder") from None
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise DataError(str(path), None, None, f"is over {MAX_SETTINGS_BYTES} bytes, too large for run settings")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(str(path), None, None, "not valid UTF-8 text") from None
    data = loads_json(text, str(path))
    if not isinstance(data, dict):
        raise DataError(str(path), None, None, "expected a JSON object")
    for key, kind in (("settings", dict), ("targets", dict)):
        if not isinstance(data.get(key), kind):
            raise DataError(str(path), None, key, f"missing or not a {kind.__name__}")
    budget = data.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or not 0 <= budget <= MAX_BUDGET):
        raise DataError(str(path), None, "budget", f"expected a whole number of tokens in 0..{MAX_BUDGET}")
    for key in ("prompts_dir",):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise DataError(str(path), None, key, "expected a string")
    if data.get("options") is not None and not isinstance(data["options"], dict):
        raise DataError(str(path), None, "options", "expected an object")
    _check_references(path, data.get("decontaminate"))
    return data


def _check_references(path: Path, references: Any) -> None:
    """settings.json's `decontaminate` (api/decontamination.py): the references a resume reads again."""
    if references is None:
        return
    if not isinstance(references, list):
        raise DataError(str(path), None, "decontaminate", "expected a list")
    for n, source in enumerate(references):
        if not isinstance(source, dict):
            raise DataError(str(path), None, f"decontaminate.{n}", "expected an object")
        for key, required in (("reference", True), ("digest", True), ("path", False), ("split", False)):
            value = source.get(key)
            if not isinstance(value, str) and (required or value is not None):
                raise DataError(str(path), None, f"decontaminate.{n}.{key}", "expected a string")


def check_run_files(run_dir: Path) -> None:
    """Each file a run folder may hold that RefineLab opens (`RUN_FILES`) is absent or, links
    followed, a regular file, else a one-line `DataError` naming it. Every read-only command on a run folder
    (`runs`, `report`, `export`, `RunResult.open`) passes through `read_report`, which checks this first: a
    named pipe planted as refined.jsonl or settings.json hung the read that followed. (A link itself is
    refused only by `resume`, `check_run_folder`, which asks this too: `report` replaces a planted report.html link.)"""
    for name in RUN_FILES:
        try:
            mode = os.stat(run_dir / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:  # a link loop, a name too long
            raise DataError(str(run_dir / name), None, None, f"cannot be read ({exc.strerror})") from None
        if not stat.S_ISREG(mode):
            raise DataError(str(run_dir / name), None, None, NOT_REGULAR)


def check_run_folder(run_dir: Path, rows: bool = True) -> None:
    """Read-only checks of a run folder before a resume opens anything in it for writing; `rows`: every item
    row of its store too (`check_store_items`)."""
    if not run_dir.is_dir():
        raise DataError(str(run_dir), None, None, "no such run folder")
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_symlink():
            raise DataError(str(path), None, None, "is a symbolic link; a run folder must hold regular files")
    check_run_files(run_dir)
    if not (run_dir / "store.sqlite").exists():
        raise DataError(str(run_dir / "store.sqlite"), None, None, "missing: the run never started or is damaged")
    for name, tables in SQLITE_FILES.items():
        check_sqlite(run_dir / name, tables)
    if rows:
        check_store_items(run_dir / "store.sqlite")


#: the store's columns that hold one item's JSON, each read back into a `QAItem` as the run goes on
ITEM_COLUMNS = {"items": ("original", "current"), "edits": ("before", "after")}
#: (table, the row's name, column) of the store's evidence: JSON objects read by resume, review and report
EVIDENCE_COLUMNS = (("diagnostics", "item_id || ' ' || check_name", "evidence"),
                    ("edits", "edit_id || ' attempt ' || attempt", "evidence"))


def check_store_items(path: Path) -> None:
    """Every item the store holds reads back as one (its JSON is an item): a run folder from elsewhere, or one
    edited by hand, is refused here naming the table, the row's id and the column, instead of a resume or a
    review stopping partway with pydantic's dump of the first bad row it happens to read. Read from a private
    copy (nothing in the folder is touched). A text seen once is not validated again (an unedited item's
    current is its original): about 65 µs a row measured on 2 shared cores, some seconds for a 100k-item run."""
    from pydantic import ValidationError

    from refinelab.schema import QAItem
    from refinelab.tools.store import json_column

    seen: set[str] = set()
    with _snapshot(path) as db:
        have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, columns in ITEM_COLUMNS.items():
            if table not in have:
                continue
            key = "id" if table == "items" else "edit_id || ' attempt ' || attempt"
            # an input row quarantined at load (`RunStore.add_rejected`) is a placeholder, never read as an
            # item: no original, its id alone as `current`; a run with invalid rows was refused as damaged
            placeholder = " AND NOT (status = 'failed' AND original IS NULL)" if table == "items" else ""
            for column in columns:
                for row_key, raw in db.execute(
                        f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL{placeholder}"):
                    if raw in seen:
                        continue
                    seen.add(raw)
                    try:
                        QAItem.model_validate_json(raw)
                    except (ValidationError, ValueError, TypeError) as exc:
                        raise DataError(str(path), None, f"{table}.{column}", f"row {str(row_key)[:80]!r} does not "
                                        f"hold an item ({validation_problems(exc)[:200]}); the run folder is damaged "
                                        "or was edited") from None
        # the JSON a resume or a review reads later: refused here, before the run starts, not partway
        for table, key, column in EVIDENCE_COLUMNS:
            if table not in have:
                continue
            for row_key, raw in db.execute(f"SELECT {key}, {column} FROM {table}"):
                if not isinstance(json_column(raw, path, f"{table}.{column}", str(row_key)), dict):
                    raise DataError(str(path), None, f"{table}.{column}", f"row {str(row_key)[:80]!r}: expected a "
                                    "JSON object; the run folder is damaged or was edited")


# ------------------------------------------------------------------------------------------ lock

class RunLock:
    """An exclusive, non-blocking lock on one run folder, released when the process ends (even by
    SIGKILL: the kernel drops the `flock`)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
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
        fd = os.open(run_dir / LOCK_NAME, flags)
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
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# ----------------------------------------------------------------------------------- claiming runs

class RunExists(ConfigError):
    """`refine` was given the id of a run that already started."""


class UntrustedRun(ConfigError):
    """settings.json was not written by RefineLab for this user: a folder from elsewhere, or edited."""


# --------------------------------------------------------------------------------- settings seal
# settings.json decides where a resume sends requests (and which API key goes with them), where it
# writes its cache, which prompts it renders. A run folder from elsewhere must not decide that silently:
# `refine` seals settings.json with an HMAC under a per-user key (0600, in the user's config folder) and
# `resume` refuses settings that do not carry this user's seal unless told to trust them.

def _seal_key() -> bytes:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = base / "refinelab" / "run-seal.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(os.urandom(32))
    return path.read_bytes()


def _mac(raw: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(_seal_key(), raw, hashlib.sha256).hexdigest()


def seal_settings(run_dir: Path) -> None:
    """Record that this user's RefineLab wrote `run_dir/settings.json` as it is now."""
    from refinelab.atomic import atomic_write_text

    atomic_write_text(run_dir / SEAL_NAME, _mac((run_dir / "settings.json").read_bytes()) + "\n")


def settings_sealed(run_dir: Path) -> bool:
    import hmac

    try:
        seal = (run_dir / SEAL_NAME).read_text().strip()
        raw = (run_dir / "settings.json").read_bytes()
    except (OSError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(seal, _mac(raw))


def _untrusted(run_dir: Path, saved: dict[str, Any]) -> UntrustedRun:
    roles = (saved.get("settings") or {}).get("roles") or {}
    endpoints = sorted({str(spec.get("endpoint", "embedded")) for spec in roles.values() if isinstance(spec, dict)})
    return UntrustedRun(
        f"{run_dir / 'settings.json'} was not written by RefineLab for this user (a run folder from elsewhere, "
        f"or edited); it would send requests and API keys to {', '.join(endpoints) or 'the embedded model'}. "
        f"Check it, then resume with --trust-run")


class RunFolder:
    """A run folder this process holds: its path, identity (checkpoint thread), lock and saved settings."""

    def __init__(self, path: Path, identity: str, lock: RunLock, created: bool,
                 saved: dict[str, Any] | None = None) -> None:
        self.path, self.identity, self.lock, self.created, self.saved = path, identity, lock, created, saved

    def release(self) -> None:
        self.lock.release()

    def discard(self) -> None:
        """Undo a run that failed before it started: remove the folder if this process created it."""
        self.lock.release()
        if self.created:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)


def check_new(runs_dir: str | Path, run_id: str) -> Path:
    """The folder a new run `run_id` takes, or RunExists if that run started (RunBusy naming the pid while a
    process works on it). `refine` asks before its slow work (reading and embedding a decontamination
    reference took minutes before this cheap refusal), and `claim_new` again under the lock."""
    path = run_path(runs_dir, run_id)
    if (path / "store.sqlite").exists() or (path / "settings.json").exists():
        if path.is_dir() and not (path / LOCK_NAME).is_symlink():
            RunLock(path).acquire().release()  # RunBusy naming the pid when a process is working on it
        raise RunExists(f"run {run_id} already exists in {path}; use `refinelab resume {run_id}`")
    return path


def claim_new(runs_dir: str | Path, run_id: str) -> RunFolder:
    """Create (or take an empty) run folder for a new run and lock it; RunExists if the run started."""
    path = check_new(runs_dir, run_id)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{path} exists and is not a folder") from None
    inside(Path(runs_dir), path)
    lock = RunLock(path).acquire()
    if (path / "store.sqlite").exists() or (path / "settings.json").exists():  # another process won the race
        lock.release()
        raise RunExists(f"run {run_id} already exists in {path}; use `refinelab resume {run_id}`")
    return RunFolder(path, run_id, lock, created)


def check_existing(runs_dir: str | Path, run_id: str, *, trust: bool = False, resuming: bool = False,
                   rows: bool = True) -> tuple[Path, str, dict[str, Any]]:
    """The read-only checks of a run folder before a resume: (folder, identity, saved settings), or a
    one-line error naming the file (nothing modified). Settings without this user's seal are refused
    unless `trust` (UntrustedRun, exit 2); `resuming` also needs a checkpoint to continue from (a review
    or a Studio server reopening its run does not). The CLI calls it before loading the graph, so a
    damaged or foreign folder is refused in a fraction of a second (`rows=False` there: the store's item rows,
    seconds on a large run, are read once, by `claim_existing`, which repeats the checks under the lock)."""
    path = run_path(runs_dir, run_id)
    if not path.is_dir():
        raise FileNotFoundError(f"no run {run_id} in {runs_dir}")
    check_run_folder(path, rows)
    saved = read_settings(path / "settings.json")
    saved_models(saved, path)  # validation errors first: they say more than a missing seal
    if not trust and not settings_sealed(path):
        raise _untrusted(path, saved)
    try:
        identity = run_identity(path) or run_id
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise DataError(str(path / "store.sqlite"), None, None, f"run identity unreadable ({exc})") from None
    if resuming:
        require_checkpoint(path / "checkpoints.sqlite", identity)
    else:
        check_checkpoint(path / "checkpoints.sqlite", identity)
    return path, identity, saved


def claim_existing(runs_dir: str | Path, run_id: str, *, trust: bool = False, resuming: bool = False) -> RunFolder:
    """Check a run folder read-only (`check_existing`), then lock it for a resume."""
    path, identity, saved = check_existing(runs_dir, run_id, trust=trust, resuming=resuming)
    lock = RunLock(path).acquire()
    return RunFolder(path, identity, lock, created=False, saved=saved)


def checkpoint_serde() -> Any:
    """The serializer of every checkpoint saver a run opens: LangGraph's, held to its own list of safe types
    (`allowed_msgpack_modules=None`, as `LANGGRAPH_STRICT_MSGPACK=true` would set it for the whole process).
    LangGraph's default imports and calls whatever callable a checkpoint names, so a `checkpoints.sqlite`
    from elsewhere could run code the moment `resume` or `review` read it, seal or no seal (the seal covers
    settings.json). Our graph state is ids and plain data (the ids-only state of docs/graph.md), so nothing
    of ours needs more; a blocked type is read back as its raw data, and `check_checkpoint` refuses it."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return JsonPlusSerializer(allowed_msgpack_modules=None)


def check_checkpoint(path: Path, thread_id: str) -> bool:
    """The run's latest checkpoint (and its pending writes) can be read back, from a private copy; whether
    there is one. (A Studio run's checkpoints live in the LangGraph server, so a folder may have none.) A
    checkpoint naming Python objects outside LangGraph's safe types was written by something else: it is
    refused here (read with `checkpoint_serde`, which never builds them), before the run is resumed."""
    if not path.exists():
        return False
    from langgraph.checkpoint.serde.event_hooks import register_serde_event_listener
    from langgraph.checkpoint.sqlite import SqliteSaver

    blocked: list[str] = []

    def listen(event: Any) -> None:
        if "blocked" in str(event.get("kind", "")):
            blocked.append(f"{event.get('module', '?')}.{event.get('name', '?')}")

    unregister = register_serde_event_listener(listen)
    # LangGraph also logs each blocked type as a warning line of its own: the refusal below says it in ours
    serde_log = logging.getLogger("langgraph.checkpoint.serde.jsonplus")
    level = serde_log.level
    serde_log.setLevel(logging.ERROR)
    try:
        with _snapshot(path) as db:
            found = SqliteSaver(db, serde=checkpoint_serde()).get_tuple({"configurable": {"thread_id": thread_id}})
    except Exception as exc:  # noqa: BLE001 - any decode failure means the same thing here
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise DataError(str(path), None, None, f"the saved checkpoint cannot be read ({type(exc).__name__}: "
                                               f"{detail}); the file is damaged") from None
    finally:
        unregister()
        serde_log.setLevel(level)
    if blocked:
        raise DataError(str(path), None, None, f"the saved checkpoint names Python objects a run never saves "
                        f"({', '.join(sorted(set(blocked))[:3])}); it was edited or comes from elsewhere, and is "
                        "not read")
    return found is not None


def require_checkpoint(path: Path, thread_id: str) -> None:
    """A resume needs a checkpoint to continue from: a run that has none (stopped before its first step
    finished, or whose store names another run) is a DataError naming the file, not LangGraph's
    EmptyInputError once the graph has started."""
    if not check_checkpoint(path, thread_id):
        raise DataError(str(path), None, None, f"no saved checkpoint of run {thread_id!r}: the run stopped before its "
                        "first step finished, or the store names another run; start it again with `refinelab refine`")


def saved_models(saved: dict[str, Any], path: Path) -> tuple[Any, Any]:
    """(Settings, Targets) from a run's settings.json, with one-line errors naming the file and field."""
    from pydantic import ValidationError

    from refinelab.config import Settings
    from refinelab.metrics.targets import Targets

    where = str(path / "settings.json")
    try:
        settings = Settings.exact(saved["settings"])
        targets = Targets.model_validate(saved["targets"])
    except ValidationError as exc:
        field, message = validation_problem(exc.errors()[0])
        raise DataError(where, None, field or None, f"{message} (and {exc.error_count() - 1} more)"
                        if exc.error_count() > 1 else message) from None
    return settings, targets
