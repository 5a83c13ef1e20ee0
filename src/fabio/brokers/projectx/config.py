"""Hosts and credentials of a ProjectX gateway (TopstepX by default; hosts are firm-branded).

Names follow the spec: `TOPSTEP_USERNAME`, `TOPSTEP_API_KEY` (the spec's `TOPSTEP_PASSWORD` is
accepted as its alias: the gateway logs in with an API key, so that variable must hold the key),
`TOPSTEP_ACCOUNT_ID` (the account's id or its name), `TOPSTEP_API_URL`, `TOPSTEP_RTC_URL`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from fabio.errors import ConfigError

TOPSTEPX_API_URL = "https://api.topstepx.com"
TOPSTEPX_RTC_URL = "https://rtc.topstepx.com"


class ProjectXConfig(BaseModel):
    """Everything the venue needs to connect; the key never appears in a repr or a log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str
    api_key: SecretStr
    account: str  # id or name
    api_url: str = TOPSTEPX_API_URL
    rtc_url: str = TOPSTEPX_RTC_URL
    live_data: bool = False  # Contract/search `live`: the data tier (practice accounts: False)
    request_timeout_sec: float = Field(10.0, gt=0)
    order_timeout_sec: float = Field(5.0, gt=0)
    revalidate_every_sec: float = Field(6 * 3600.0, gt=0)  # well before the 24 h expiry
    login_retry_sec: float = Field(120.0, ge=0)  # a busy gateway at start-up: then give up
    requests_per_minute: int = Field(200, ge=1)
    bars_per_30s: int = Field(50, ge=1)
    hub_stale_after_sec: float = Field(30.0, gt=0)
    hub_connect_timeout_sec: float = Field(10.0, gt=0)
    hub_backoff_initial_sec: float = Field(0.5, gt=0)
    hub_backoff_max_sec: float = Field(30.0, gt=0)
    hub_max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)

    @property
    def user_hub_url(self) -> str:
        return self.rtc_url.rstrip("/") + "/hubs/user"

    @property
    def market_hub_url(self) -> str:
        return self.rtc_url.rstrip("/") + "/hubs/market"


def projectx_config(settings: Any, gateway: str | None = None, **overrides: Any) -> ProjectXConfig:
    """The venue config from `Settings`; `gateway` (e.g. a local simulator) sets both hosts."""
    username = getattr(settings, "topstep_username", None)
    key: SecretStr | None = getattr(settings, "topstep_api_key", None) or getattr(
        settings, "topstep_password", None
    )
    account = getattr(settings, "topstep_account_id", None)
    missing = [
        name
        for name, value in (
            ("TOPSTEP_USERNAME", username),
            ("TOPSTEP_API_KEY (or TOPSTEP_PASSWORD holding the API key)", key),
            ("TOPSTEP_ACCOUNT_ID", account),
        )
        if not value
    ]
    if missing:
        raise ConfigError("live trading needs " + ", ".join(missing))
    api = str(gateway or getattr(settings, "topstep_api_url", None) or TOPSTEPX_API_URL)
    rtc = str(gateway or getattr(settings, "topstep_rtc_url", None) or TOPSTEPX_RTC_URL)
    assert key is not None
    return ProjectXConfig(
        username=str(username),
        api_key=key,
        account=str(account),
        api_url=api.rstrip("/"),
        rtc_url=rtc.rstrip("/"),
        **overrides,
    )
