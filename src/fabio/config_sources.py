"""`fabio config`: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import AliasChoices, SecretStr

from fabio.config import Settings

MASK = "********"


def _env_names(name: str, field: Any) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c).upper() for c in alias.choices]
    if isinstance(alias, str):
        return [alias.upper()]
    return [name.upper()]


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value"):  # enums
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def effective_settings(settings: Settings, env_file: Path = Path(".env")) -> list[dict[str, Any]]:
    """One row per setting: variable, value (secrets masked), source (env, .env or default)."""
    environ = {k.upper() for k in os.environ}
    dotenv = {k.upper() for k in dotenv_values(env_file)} if env_file.is_file() else set()
    rows = []
    for name, field in Settings.model_fields.items():
        names = _env_names(name, field)
        source = "default"
        variable = names[0]
        for candidate in names:
            if candidate in environ:
                source, variable = "env", candidate
                break
        else:
            for candidate in names:
                if candidate in dotenv:
                    source, variable = ".env", candidate
                    break
        rows.append(
            {"variable": variable, "value": _shown(getattr(settings, name)), "source": source}
        )
    return rows
