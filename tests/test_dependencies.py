"""Every pinned runtime dependency is exact (==) and used by the package (issue 9)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = {  # distribution name -> import name, where they differ
    "pydantic-settings": "pydantic_settings",
    "python-dotenv": "dotenv",
    "databento-dbn": "databento_dbn",
    "pandas-market-calendars": "pandas_market_calendars",
    "exchange-calendars": "exchange_calendars",
    "bpe-openai": "bpe_openai",
    "python-socketio": "socketio",
}
# Pinned for another package's sake and never imported by name, each with its reason.
RUNTIME_ONLY = {
    "websockets": "uvicorn's WebSocket protocol for the dashboard and the gateway simulator",
}


def test_every_runtime_dependency_is_pinned_and_imported() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "fabio").rglob("*.py"))
    for dep in deps:
        name, _, version = dep.partition("==")
        assert version, f"{dep} is not pinned exactly"
        if name in RUNTIME_ONLY:
            continue
        module = MODULE.get(name, name.replace("-", "_"))
        pattern = rf"^\s*(import|from) {module}\b"
        assert re.search(pattern, source, re.MULTILINE), f"{name} is pinned but never imported"
