"""Reliability suite: make the graph's scripted responder and the sandbox attack cases importable."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for folder in (Path(__file__).resolve().parent, TESTS / "graph", TESTS / "sandbox"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
