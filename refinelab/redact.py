"""Remove secrets from text before it is stored, traced, printed or exported.

Endpoint error bodies are untrusted and may quote our request back, `Authorization` header included.
`redact(text)` replaces, wherever they occur:

- every configured secret: the values of the environment variables a model spec names in
  `api_key_env`, of well-known key variables, of any variable whose name says KEY/TOKEN/SECRET/PASSWORD,
  and of values registered with `register_secret` -- verbatim, JSON-escaped, URL-encoded, base64-encoded
  (HTTP Basic), reversed, and any 12+ character piece of one (a key quoted half, or cut short);
- anything shaped like a credential: `Bearer …`/`Basic …`, `sk-…`-style keys, JWTs, and the value after
  `authorization`, `api_key`, `x-api-key`, `token`, `secret` or `password`.

Used at the few choke points where error text leaves a process: the model client's error path, the
tracer, the run store's reason columns, and the CLI's error printing.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import threading
import urllib.parse
from typing import Any

MASK = "[REDACTED]"
MIN_SECRET_CHARS = 8  # shorter values ("0", "true") are not secrets worth masking and would mangle text
MIN_PIECE_CHARS = 12

_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?|AUTH)(?:_|$)",
                          re.IGNORECASE)
_KNOWN_VARS = ("OPENAI_API_KEY", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "E2B_API_KEY", "HF_TOKEN",
               "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY")

_BEARER = re.compile(r"(?i:\bbearer)(?:\s+|%20|\+)[A-Za-z0-9._~+/=\-]{8,}|\bBasic\s+[A-Za-z0-9+/=]{16,}")
_KEYED = re.compile(r"""(?ix)
    (["']?\b(?:proxy-authorization|authorization|api[-_ ]?key|apikey|x-api-key|access[-_]?token|auth[-_]?token|
          refresh[-_]?token|client[-_]?secret|secret[-_]?key|secret|password|passwd)["']?
     \s*(?:[:=]|\\u003a)\s*["']?)
    (?!\[REDACTED\])((?:bearer\s+|basic\s+)?[^\s"',;&}]{6,})""")
_SHAPED = [
    re.compile(r"(?<=://)[^/\s@:]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{12,}"),  # sk-…, sk-proj-…, sk-ant-…
    re.compile(r"\b(?:lsv2|hf|gh[pousr]|xox[abpr]|e2b)_[A-Za-z0-9_\-]{12,}"),  # provider-prefixed tokens
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWT
]

_registered: set[str] = set()
_extra_vars: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` from now on (a key obtained other than through the environment)."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _registered.add(value)


def register_env(name: str) -> None:
    """Mask the value of environment variable `name` (a model spec's `api_key_env`)."""
    if name:
        with _lock:
            _extra_vars.add(name)


_memo: dict[str, Any] = {"keys": None, "extra": 0, "names": (), "state": None, "secrets": []}


def configured_secrets() -> list[str]:
    """Every secret value known now, longest first (so a key is masked before a piece of it).

    Called for every trace record and stored answer, so the environment is not re-scanned each time:
    the secret-named variables are found again only when the set of variable names changes, and the
    list is rebuilt only when one of their values, or the registered secrets, change."""
    keys = tuple(os.environ)
    with _lock:
        if keys != _memo["keys"] or _memo["extra"] != len(_extra_vars):
            names = set(_KNOWN_VARS) | _extra_vars
            _memo["names"] = tuple(n for n in keys if n in names or _SECRET_NAME.search(n))
            _memo["keys"], _memo["extra"] = keys, len(_extra_vars)
        state = (tuple(os.environ.get(n) for n in _memo["names"]), len(_registered))
        if state != _memo["state"]:
            values = set(_registered) | {v for v in state[0] if v}
            _memo["secrets"] = sorted((v for v in values if len(v) >= MIN_SECRET_CHARS and not v.startswith("/")),
                                      key=len, reverse=True)
            _memo["state"] = state
        return list(_memo["secrets"])


@functools.lru_cache(maxsize=256)
def _forms(secret: str) -> list[str]:
    forms = {secret, secret[::-1], json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret)}
    for encoded in (base64.b64encode(secret.encode()), base64.b64encode(f":{secret}".encode()),
                    base64.urlsafe_b64encode(secret.encode())):
        text = encoded.decode()
        forms.add(text)
        forms.add(text.rstrip("="))
    return sorted((f for f in forms if len(f) >= MIN_SECRET_CHARS), key=len, reverse=True)  # type: ignore[return-value]


def _mask_pieces(text: str, secret: str) -> str:
    """Mask any run of MIN_PIECE_CHARS+ characters of `secret` (a key quoted in part)."""
    window = MIN_PIECE_CHARS
    if len(secret) < window or len(text) < window:
        return text
    pieces = {secret[i:i + window] for i in range(len(secret) - window + 1)}
    if not any(piece in text for piece in pieces):
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if i <= n - window and text[i:i + window] in pieces:
            j = i + window  # extend while the text keeps matching some piece of the secret
            while j < n and text[j - window + 1:j + 1] in pieces:
                j += 1
            out.append(MASK)
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def redact_secrets(text: Any, secrets: list[str] | None = None) -> Any:
    """Only the configured secrets (in all their forms) masked: for model output, where a
    credential-shaped pattern could be legitimate content."""
    if not isinstance(text, str) or len(text) < MIN_SECRET_CHARS:
        return text
    for secret in configured_secrets() if secrets is None else secrets:
        for form in _forms(secret):
            if form in text:
                text = text.replace(form, MASK)
        text = _mask_pieces(text, secret)
    return text


def redact(text: Any) -> Any:
    """`text` (error text) with every secret and credential-shaped string replaced by MASK."""
    if not isinstance(text, str) or not text:
        return text
    text = redact_secrets(text)
    text = _BEARER.sub(MASK, text)
    text = _KEYED.sub(lambda m: m.group(1) + MASK, text)
    for pattern in _SHAPED:
        text = pattern.sub(MASK, text)
    return text


def redact_value(value: Any) -> Any:
    """`redact` applied to every string inside a JSON-like value (dicts, lists), iteratively."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def redact_json(value: Any) -> tuple[Any, str]:
    """(value, its JSON text) with every configured secret masked in every string of `value`."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    scrubbed = redact_secrets(text)
    if scrubbed == text:
        return value, text
    try:
        return json.loads(scrubbed), scrubbed
    except ValueError:  # a mask landed inside an escape sequence: scrub string by string instead
        clean = _secrets_in_values(json.loads(text))
        return clean, json.dumps(clean, ensure_ascii=False)


def _secrets_in_values(value: Any) -> Any:
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, dict):
        return {k: _secrets_in_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_secrets_in_values(v) for v in value]
    return value
