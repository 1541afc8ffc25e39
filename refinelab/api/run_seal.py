"""The settings seal: whether this user's RefineLab wrote a run folder's settings.json.

settings.json decides where a resume sends requests (and which API key goes with them), where it writes its
cache, which prompts it renders. A run folder from elsewhere must not decide that silently: `refine` seals
settings.json with an HMAC under a per-user key (0600, in the user's config folder) and `resume` refuses
settings that do not carry this user's seal unless told to trust them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from refinelab.errors import ConfigError
from refinelab.run_layout import SEAL, SETTINGS


class UntrustedRun(ConfigError):
    """settings.json was not written by RefineLab for this user: a folder from elsewhere, or edited."""


def _seal_key() -> bytes:
    """This user's sealing key, made on first use; created exclusively, so two processes agree on one key."""
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

    atomic_write_text(run_dir / SEAL, _mac((run_dir / SETTINGS).read_bytes()) + "\n")


def settings_sealed(run_dir: Path) -> bool:
    """Whether `run_dir/settings.json` carries this user's seal; an unreadable seal or settings is no seal."""
    import hmac

    try:
        seal = (run_dir / SEAL).read_text().strip()
        raw = (run_dir / SETTINGS).read_bytes()
    except (OSError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(seal, _mac(raw))


def untrusted_run(run_dir: Path, saved: dict[str, Any]) -> UntrustedRun:
    """The refusal of an unsealed run folder, naming the endpoints its settings would send requests to, so the
    user can judge what `--trust-run` would allow."""
    roles = (saved.get("settings") or {}).get("roles") or {}
    endpoints = sorted({str(spec.get("endpoint", "embedded")) for spec in roles.values() if isinstance(spec, dict)})
    return UntrustedRun(
        f"{run_dir / SETTINGS} was not written by RefineLab for this user (a run folder from elsewhere, "
        f"or edited); it would send requests and API keys to {', '.join(endpoints) or 'the embedded model'}. "
        f"Check it, then resume with --trust-run")
