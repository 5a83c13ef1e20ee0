"""The brain factory (`--brain rules|llm|cache`) and the secrets to redact.

`fabio decide` itself (one decision at a moment of a data file) is `fabio.decide.decide_at`.
"""

from __future__ import annotations

from fabio.brain.base import Brain
from fabio.brain.thresholds import LearningRules, RegimeThresholds
from fabio.config import Settings
from fabio.errors import FabioError

BRAINS = ("rules", "llm", "cache")
CACHE_FILE = "llm_cache.jsonl"


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, for redaction."""
    secrets = (
        settings.openai_api_key,
        settings.topstep_password,
        settings.topstep_api_key,
        settings.dashboard_token,
        settings.alert_urls,
    )
    return [s.get_secret_value() for s in secrets if s is not None]


def make_brain(kind: str, settings: Settings, learning: str = "expectancy") -> Brain:
    """The brain `--brain` names; the rule brain always stands behind the others.

    `learning` names the rule brain's learning policy (`expectancy` or `seed`)."""
    from fabio.brain.cache import CachedBrain
    from fabio.brain.llm import LlmBrain
    from fabio.brain.rules import RuleBrain

    if kind not in BRAINS:
        raise FabioError(f"--brain {kind}: choose one of {', '.join(BRAINS)}")
    from fabio.brain.learning import POLICIES

    if learning not in (*POLICIES, "off"):
        raise FabioError(f"--learning {learning}: choose one of {', '.join(POLICIES)}")
    rules = RuleBrain(RegimeThresholds(), LearningRules(), learning=learning)
    if kind == "rules":
        return rules
    cache_path = settings.log_dir / CACHE_FILE
    if kind == "cache":
        return CachedBrain.replay(cache_path, model=settings.openai_model, fallback=rules)
    llm = LlmBrain.from_settings(settings, fallback=rules)
    if llm is None:
        raise FabioError(
            "--brain llm needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (an OpenAI-compatible "
            "server such as Ollama); set one in the environment or .env, or use --brain rules"
        )
    return CachedBrain.record(cache_path, llm)
