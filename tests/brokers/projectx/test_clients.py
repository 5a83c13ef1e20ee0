"""Config, the rate limiter and redaction: the small safety pieces of the clients."""

from __future__ import annotations

import asyncio
import time

import pytest

from fabio.brokers.projectx.config import projectx_config
from fabio.brokers.projectx.http import SlidingWindowLimiter
from fabio.brokers.projectx.hub import redact
from fabio.config import Settings
from fabio.errors import ConfigError


def test_password_is_the_api_key_alias_and_never_shown() -> None:
    s = Settings(
        _env_file=None,
        topstep_username="me",
        topstep_password="the-key",  # type: ignore[call-arg]
        topstep_account_id="PRAC-1",
    )
    cfg = projectx_config(s, gateway="http://127.0.0.1:9/")
    assert cfg.api_key.get_secret_value() == "the-key"
    assert "the-key" not in repr(cfg) and "the-key" not in str(cfg.model_dump())
    assert cfg.api_url == "http://127.0.0.1:9" and cfg.user_hub_url.endswith("/hubs/user")
    default = projectx_config(s)
    assert default.api_url == "https://api.topstepx.com"
    assert default.market_hub_url == "https://rtc.topstepx.com/hubs/market"


def test_missing_credentials_name_the_variables() -> None:
    s = Settings(_env_file=None, topstep_username="me")  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as info:
        projectx_config(s)
    assert "TOPSTEP_API_KEY" in str(info.value) and "TOPSTEP_ACCOUNT_ID" in str(info.value)


def test_sliding_window_limiter_holds_the_rate() -> None:
    async def burst() -> tuple[float, list[float]]:
        limiter = SlidingWindowLimiter(5, 0.3, margin_sec=0.0)
        start = time.monotonic()
        stamps = []
        for _ in range(11):
            await limiter.acquire()
            stamps.append(limiter._stamps[-1])  # the limiter's own clock reading of this call
        return time.monotonic() - start, stamps

    elapsed, stamps = asyncio.run(burst())
    # never a sixth call within 0.3 s of the fifth before it: 11 calls need two full windows
    assert all(b - a >= 0.3 for a, b in zip(stamps, stamps[5:], strict=False))
    assert stamps[-1] - stamps[0] >= 0.6
    assert elapsed < 30  # bounds a hang only: a busy machine makes the waits longer, not shorter


def test_token_redacted_from_messages() -> None:
    text = "Cannot connect to https://rtc/hubs/user/negotiate?access_token=eyJ.a-b_c&id=1"
    assert redact(text) == "Cannot connect to https://rtc/hubs/user/negotiate?access_token=***&id=1"
