"""Compiled kernels are cached in the user's cache folder, not in the package (item 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fabio

PACKAGE = Path(fabio.__file__).parent


def test_numba_cache_goes_to_the_user_cache_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    before = {p: p.stat().st_mtime_ns for p in PACKAGE.rglob("*.nb[ic]")}
    code = (
        "import numba, fabio, numpy as np\n"  # numba imported first on purpose
        "from fabio.features.profile import poc_index\n"
        "print(numba.config.CACHE_DIR)\n"
        "poc_index(np.array([1, 3, 2], dtype=np.int64), 0, 2)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "cache" / "fabio" / "numba"
    assert result.stdout.strip() == str(cache)
    assert list(cache.rglob("*.nbi")), "no kernel was cached in the user cache folder"
    after = {p: p.stat().st_mtime_ns for p in PACKAGE.rglob("*.nb[ic]")}
    assert after == before  # nothing written inside the package
