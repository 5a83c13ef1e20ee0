"""Every setting documented in `.env.example` loads (issue 9: a copied `.env` broke commands)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fabio.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(\S*)")


def _documented() -> dict[str, str]:
    """KEY -> value of every setting in the example, active or commented out."""
    found = {}
    for line in EXAMPLE.read_text().splitlines():
        m = _LINE.match(line.strip())
        if m:
            found[m[1]] = m[2]
    return found


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*_documented(), "LOGS_DIR"]:
        monkeypatch.delenv(name, raising=False)


def test_the_example_as_shipped_loads(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(EXAMPLE.read_text())
    s = load_settings(env_file=env)
    assert s.feature_value_area_rows == 2
    assert s.symbol == "NQZ5" and s.mode == "test"


def test_every_documented_setting_loads_with_its_value(tmp_path: Path) -> None:
    documented = _documented()
    fields = {name.upper() for name in Settings.model_fields}
    aliases = {"LOGS_DIR", "LOG_DIR"}
    unknown = set(documented) - fields - aliases
    assert not unknown, f".env.example documents settings Fabio does not read: {unknown}"
    # Uncomment everything, inline comments included, and load it.
    env = tmp_path / ".env"
    env.write_text(
        "\n".join(
            line.lstrip("# ") if _LINE.match(line.strip()) else line
            for line in EXAMPLE.read_text().splitlines()
        )
    )
    s = load_settings(env_file=env)
    dumped = s.model_dump()
    for key, raw in documented.items():
        name = "log_dir" if key in aliases else key.lower()
        value = dumped[name]
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        shown = str(value.value if hasattr(value, "value") else value)
        if name == "flat_time":
            shown = shown[:5]
        assert shown == raw or float(shown) == float(raw), (key, raw, value)


def test_logs_dir_is_settable(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"LOGS_DIR={tmp_path / 'journals'}\n")
    assert load_settings(env_file=env).log_dir == tmp_path / "journals"
