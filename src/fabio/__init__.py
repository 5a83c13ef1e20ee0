"""Fabio: a self-learning order-flow trading agent for CME index futures."""

import os
import sys

__version__ = "0.1.0"


def _numba_cache_dir() -> None:
    """Compiled kernels are cached in the user's cache folder, never inside the installed package
    (a read-only or shared install must work). Set before numba compiles anything; a
    NUMBA_CACHE_DIR the user set wins."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    import platformdirs

    os.environ["NUMBA_CACHE_DIR"] = os.path.join(platformdirs.user_cache_dir("fabio"), "numba")
    if "numba" in sys.modules:  # imported before us: make it read the variable again
        from numba.core import config

        config.reload_config()


_numba_cache_dir()
