"""The service files: PM2's ecosystem file loads in node; the systemd unit stops gracefully."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

from tests.dashboard.conftest import require

ROOT = Path(__file__).resolve().parents[1]


def test_pm2_ecosystem_file_loads_in_node() -> None:
    node = shutil.which("node")
    require(node is not None, "node is missing (apt-get install -y nodejs)")
    assert node is not None
    out = subprocess.run(
        [node, "-e", "console.log(JSON.stringify(require('./deploy/ecosystem.config.js')))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    apps = {a["name"]: a for a in json.loads(out)["apps"]}
    agent = apps["fabio-enhanced"]
    assert agent["args"][:1] == ["run"] and "--dashboard" in agent["args"]
    assert agent["script"] == str(ROOT / ".venv" / "bin" / "fabio")
    assert agent["cwd"] == str(ROOT) and agent["interpreter"] == "none"
    assert agent["kill_signal"] == "SIGTERM" and agent["kill_timeout"] >= 10_000
    assert agent["autorestart"] and agent["max_restarts"] >= 1
    assert agent["out_file"].startswith(str(ROOT / "logs"))
    assert apps["fabio-dashboard"]["args"][:1] == ["serve"]
    for app in apps.values():  # secrets stay in .env, out of PM2's environment
        assert not any(
            k.startswith(("OPENAI", "TOPSTEP", "DASHBOARD_TOKEN")) for k in app.get("env", {})
        )


def test_systemd_unit_runs_the_agent_and_stops_it_with_sigterm() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "fabio.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("fabio run --quiet --dashboard")
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 10
    assert service["Restart"] in ("always", "on-failure")
    assert unit["Install"]["WantedBy"] == "multi-user.target"
