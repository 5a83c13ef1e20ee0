"""Every setting documented in `.env.example` loads (issue 9: a copied `.env` broke commands), and a
copied `.env` runs offline on the rule brain (issue 22: `your_api_key` counted as a key)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fabio.config import Settings, is_placeholder, load_settings, unknown_settings
from fabio.paper import PaperSession, RunOptions

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
        if is_placeholder(raw):  # a template's stand-in is unset, never a credential
            assert value is None, (key, raw, value)
            continue
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


def test_a_copied_example_runs_on_the_rule_brain(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(EXAMPLE.read_text())
    s = load_settings(env_file=env)
    assert s.openai_api_key is None and s.openai_base_url is None
    assert s.topstep_password is None and s.topstep_api_key is None
    assert PaperSession(s, RunOptions()).brain.name == "rules"


@pytest.mark.parametrize(
    "value", ["your_api_key", "changeme", "sk-...", "sk-xxxxxxxx", "<your key>", "''", "YOUR_KEY"]
)
def test_a_placeholder_key_is_unset_and_said_in_one_line(tmp_path: Path, value: str) -> None:
    env = tmp_path / ".env"
    env.write_text(f"OPENAI_API_KEY={value}\nTOPSTEP_PASSWORD=your_password\nSYMBOL=ES\n")
    s = load_settings(env_file=env)
    assert s.openai_api_key is None and s.topstep_password is None
    assert PaperSession(s, RunOptions()).brain.name == "rules"
    said = [w for w in unknown_settings(env, environ={}) if "placeholder" in w]
    assert len(said) == 1, said
    assert "TOPSTEP_PASSWORD" in said[0] and "treated as unset" in said[0]
    # an empty value is how one leaves a setting out: nothing to say about it
    assert ("OPENAI_API_KEY" in said[0]) == (value != "''")
    assert "your_password" not in said[0]  # names, not values


def test_a_real_key_is_kept(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OPENAI_API_KEY=sk-proj-Abc123def456\n")
    s = load_settings(env_file=env)
    assert s.openai_api_key is not None
    assert s.openai_api_key.get_secret_value() == "sk-proj-Abc123def456"
    assert not [w for w in unknown_settings(env, environ={}) if "placeholder" in w]
