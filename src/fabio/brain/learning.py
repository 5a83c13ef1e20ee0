"""Learning policies: how the rule brain judges strategies on their measured results.

Two named policies (`--learning`):

- `expectancy` (the default): a strategy is judged on its expectancy in R after costs, with its
  uncertainty. The estimate is shrunk towards 0 R (`prior_trades` pseudo-trades of 0 R) and
  given a standard error (the sample R spread, floored); the bounds are estimate ± z × error.
  As the upper bound falls below 0 (evidence of a negative expectancy) the strategy's
  `risk_fraction` is cut in bounded steps; it is disabled only when the evidence is clear
  (upper bound at `disable_z` below 0 over at least `disable_min_trades`). Win rate plays no
  part: a strategy that wins 25 % of the time at 4 R is left alone. A positive lower bound
  raises the risk a step at a time, up to `risk_cap`. Per strategy × regime the same test over
  the trades of that regime blocks the strategy in that regime for `regime_block_sessions`
  sessions. A disabled strategy trades in shadow (`fabio.execution.shadow`); after a cooldown
  (`cooldown_shadow_trades` shadow trades over `cooldown_sessions` sessions) it is re-enabled,
  at the lowest risk step, when its shadow expectancy's lower bound at `reenable_z` is above 0.
  An enabled strategy cut to a `risk_fraction` that buys no contract for a setup ("sized out":
  on ES bars with a 50K account one contract at the 8-tick minimum stop plus the 8-tick
  slippage allowance is $200, risk_fraction 0.004) trades those setups in shadow too; after the same
  cooldown (shadow trades since its risk last changed) and the same `reenable_z` test its risk
  is restored to its initial risk_fraction (`restore_risk`).
- `seed`: the spec's rules as written (after `min_trades` trades: win rate < 0.4 or net P&L < 0
  disables; win rate > 0.6 and net P&L > 0 raises the risk one step).
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from fabio.brain.context import DecisionContext
from fabio.brain.schema import StrategyChanges, StrategyTweak
from fabio.brain.thresholds import LearningRules
from fabio.strategies import StrategyParams, StrategyPerformance

PolicyName = Literal["expectancy", "seed"]
POLICIES: tuple[PolicyName, ...] = ("expectancy", "seed")
NS = 1_000_000_000


class LearningPolicy(Protocol):
    name: str

    def judge(self, ctx: DecisionContext, regime: str) -> tuple[list[StrategyTweak], list[str]]:
        """Strategy tweaks (with their notes) the measured results call for now."""
        ...

    def allows(self, strategy: str, regime: str, ctx: DecisionContext) -> bool:
        """Whether the strategy may take a setup in this regime."""
        ...


class ExpectancyRules(BaseModel):
    """The numbers of the expectancy policy (R after costs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prior_trades: float = Field(10.0, ge=0)  # shrinkage: this many pseudo-trades of 0 R
    r_std_floor: float = Field(0.75, gt=0)  # the spread assumed at least (few trades)
    throttle_min_trades: int = Field(10, ge=1)
    throttle_z: float = Field(1.0, ge=0)  # upper bound below 0 at this z: one step down
    disable_min_trades: int = Field(30, ge=1)
    disable_z: float = Field(2.0, ge=0)  # ... at this z: disabled
    raise_min_trades: int = Field(30, ge=1)
    raise_z: float = Field(1.0, ge=0)  # lower bound above 0 at this z: one step up
    rejudge_trades: int = Field(5, ge=1)  # new trades between two risk steps of a strategy
    risk_step: float = Field(0.001, gt=0, le=0.01)
    risk_floor: float = Field(0.001, gt=0, le=0.01)  # the lowest step while enabled
    risk_cap: float = Field(0.0075, gt=0, le=0.05)  # raising stops here
    regime_min_trades: int = Field(15, ge=1)
    regime_block_z: float = Field(2.0, ge=0)
    regime_block_sessions: int = Field(10, ge=1)
    cooldown_shadow_trades: int = Field(15, ge=1)
    cooldown_sessions: int = Field(5, ge=1)
    reenable_z: float = Field(0.5, ge=0)


def bounds(n: float, mean: float, std: float, rules: ExpectancyRules) -> tuple[float, float]:
    """(shrunk expectancy, its standard error) in R."""
    if n <= 0:
        return 0.0, math.inf
    shrunk = mean * n / (n + rules.prior_trades)
    se = max(std, rules.r_std_floor) / math.sqrt(n + rules.prior_trades)
    return shrunk, se


def _evidence(summary: dict[str, float], prefix: str = "") -> tuple[int, float, float]:
    n = int(summary.get(f"{prefix}trades", 0) or 0)
    return (
        n,
        float(summary.get(f"{prefix}avg_r", 0.0) or 0.0),
        float(summary.get(f"{prefix}r_std", 0.0) or 0.0),
    )


class ExpectancyPolicy:
    """Expectancy in R with uncertainty; see the module docstring."""

    name = "expectancy"

    def __init__(self, rules: ExpectancyRules | None = None) -> None:
        self.rules = rules or ExpectancyRules()
        self.judged_at: dict[str, int] = {}  # strategy -> trades when its risk last moved
        # (strategy, regime) -> the session index until which it is blocked
        self.blocked: dict[tuple[str, str], int] = {}
        self._blocked_at: dict[tuple[str, str], int] = {}  # ... and its trades there then
        self._session = -1
        self._last_minute = math.inf

    # -- regime blocks ----------------------------------------------------------------
    def _advance_session(self, ctx: DecisionContext) -> None:
        if ctx.session_minute < self._last_minute:
            self._session += 1
        self._last_minute = ctx.session_minute

    def allows(self, strategy: str, regime: str, ctx: DecisionContext) -> bool:
        until = self.blocked.get((strategy, regime))
        return until is None or self._session >= until

    def _regime_blocks(self, ctx: DecisionContext, regime: str) -> list[str]:
        """Block a strategy in this regime on clear evidence there; after a block runs out it
        trades again in the regime, and is blocked again only on the evidence of new trades."""
        r = self.rules
        notes = []
        for name, perf in sorted(ctx.strategy_performance.items()):
            stats = perf.by_regime.get(regime)
            key = (name, regime)
            if stats is None or not self.allows(name, regime, ctx):
                continue
            if self._blocked_at.get(key) == int(stats.get("trades", 0)):
                continue  # no new trade in this regime since the last block
            n, mean, std = _evidence(stats, "recent_")
            if n < r.regime_min_trades:
                continue
            shrunk, se = bounds(n, mean, std, r)
            upper = shrunk + r.regime_block_z * se
            if upper >= 0:
                continue
            self.blocked[key] = self._session + r.regime_block_sessions
            self._blocked_at[key] = int(stats.get("trades", 0))
            notes.append(
                f"{ctx.symbol}: {name} stands aside in {regime} for {r.regime_block_sessions} "
                f"sessions: expectancy {shrunk:+.2f} R (upper bound {upper:+.2f} R) over its "
                f"last {n} trades in {regime}"
            )
        return notes

    # -- strategy judgement -------------------------------------------------------------
    def judge(self, ctx: DecisionContext, regime: str) -> tuple[list[StrategyTweak], list[str]]:
        self._advance_session(ctx)
        tweaks: list[StrategyTweak] = []
        notes = self._regime_blocks(ctx, regime)
        for name in sorted(ctx.strategy_performance):
            params = ctx.strategy_state.get(name)
            if params is None:
                continue
            perf = ctx.strategy_performance[name]
            judged = (
                self._reenable(name, perf, params, ctx)
                if not params.enabled
                else self._judge_enabled(name, perf, params, ctx)
                or self._restore(name, perf, params, ctx)
            )
            if judged is not None:
                tweaks.append(judged[0])
                notes.append(judged[1])
        return tweaks, notes

    def _judge_enabled(
        self, name: str, perf: StrategyPerformance, params: StrategyParams, ctx: DecisionContext
    ) -> tuple[StrategyTweak, str] | None:
        r = self.rules
        n, mean, std = _evidence(perf.recent)
        if n < r.throttle_min_trades:
            return None
        last = self.judged_at.get(name)
        if last is not None and perf.trades - last < r.rejudge_trades:
            return None
        shrunk, se = bounds(n, mean, std, r)
        stats = (
            f"expectancy {shrunk:+.3f} R ± {se:.3f} over the last {n} trades "
            f"(raw {mean:+.3f} R, win rate {perf.win_rate or 0:.2f})"
        )
        if n >= r.disable_min_trades and shrunk + r.disable_z * se < 0:
            self.judged_at[name] = perf.trades
            why = f"clearly negative: upper bound {shrunk + r.disable_z * se:+.3f} R"
            return (
                StrategyTweak(
                    name=name, changes=StrategyChanges(enabled=False), reason=f"{why}; {stats}"
                ),
                f"{ctx.symbol}: disabled {name} ({why}; {stats}); it trades in shadow "
                "and comes back when its shadow trades earn it",
            )
        if shrunk + r.throttle_z * se < 0 and params.risk_fraction > r.risk_floor:
            new = round(max(r.risk_floor, params.risk_fraction - r.risk_step), 6)
            self.judged_at[name] = perf.trades
            return (
                StrategyTweak(
                    name=name,
                    changes=StrategyChanges(risk_fraction=new),
                    reason=f"evidence of a negative expectancy: {stats}",
                ),
                f"{ctx.symbol}: cut {name} risk {params.risk_fraction:g} -> {new:g} ({stats})",
            )
        if (
            n >= r.raise_min_trades
            and shrunk - r.raise_z * se > 0
            and params.risk_fraction < r.risk_cap
        ):
            new = round(min(r.risk_cap, params.risk_fraction + r.risk_step), 6)
            self.judged_at[name] = perf.trades
            return (
                StrategyTweak(
                    name=name,
                    changes=StrategyChanges(risk_fraction=new),
                    reason=f"positive expectancy: {stats}",
                ),
                f"{ctx.symbol}: raised {name} risk {params.risk_fraction:g} -> {new:g} ({stats})",
            )
        return None

    def _shadow_earned(self, perf: StrategyPerformance) -> str | None:
        """The shadow evidence that earns a strategy its way back (cooldown passed and the
        lower bound at `reenable_z` above 0), as text; None when it has not earned it."""
        r = self.rules
        shadow = perf.shadow
        n, mean, std = _evidence(shadow)
        if n < r.cooldown_shadow_trades or shadow.get("sessions", 0) < r.cooldown_sessions:
            return None
        shrunk, se = bounds(n, mean, std, r)
        if shrunk - r.reenable_z * se <= 0:
            return None
        return (
            f"shadow expectancy {shrunk:+.3f} R ± {se:.3f} over {n} shadow trades in "
            f"{int(shadow.get('sessions', 0))} sessions"
        )

    def _restore(
        self, name: str, perf: StrategyPerformance, params: StrategyParams, ctx: DecisionContext
    ) -> tuple[StrategyTweak, str] | None:
        """A strategy whose sized-out setups (its shadow trades since its risk last changed)
        earned it: its risk back (`restore_risk`). Sized out at every stop (in `ctx.sized_out`)
        or only at the wider ones: on ES bars at 0.004 only the 8-tick minimum stop fits, so a
        strategy cut there takes about one trade a year and shadows the rest (measured on
        ESH15-19: 1 trade against ~170 sized-out shadow trades a year).

        Note to future self: the level is the strategy's initial risk_fraction (the playbook's
        or STRATEGIES_FILE's), not one step up. Reason: the throttle cut it from there one step
        at a time on real-trade evidence until no contract fitted; a step up from a sized-out
        level is usually still sized out, and each step would cost another cooldown (>= 5
        sessions) with no real trade to judge in between; the shadow evidence asked here is
        the bar that re-enables a disabled strategy. The guardrails still bound the move
        (± 0.002 per update, 30 closed or shadow trades to raise): a clamped restore that still
        sizes out shadows again and the next cooldown finishes the climb. Not above
        `risk_cap`; never a cut (a strategy already at its initial level stays as it is).
        """
        if not perf.shadow:  # an enabled strategy's shadow trades: its sized-out setups
            return None
        initial = ctx.initial_risk_fraction.get(name)
        if initial is None:
            return None
        target = round(min(initial, self.rules.risk_cap), 6)
        if target <= params.risk_fraction:
            return None
        earned = self._shadow_earned(perf)
        if earned is None:
            return None
        why = (
            f"sized out: {ctx.sized_out[name]}"
            if name in ctx.sized_out
            else "its setups with wider stops were sized out"
        )
        self.judged_at[name] = perf.trades
        return (
            StrategyTweak(
                name=name,
                changes=StrategyChanges(risk_fraction=target),
                reason=f"sized out, earned its risk back: {earned}",
            ),
            f"{ctx.symbol}: restored {name} risk {params.risk_fraction:g} -> {target:g}, its "
            f"initial level ({why}; {earned})",
        )

    def _reenable(
        self, name: str, perf: StrategyPerformance, params: StrategyParams, ctx: DecisionContext
    ) -> tuple[StrategyTweak, str] | None:
        r = self.rules
        stats = self._shadow_earned(perf)
        if stats is None:
            return None
        self.judged_at[name] = perf.trades
        return (
            StrategyTweak(
                name=name,
                changes=StrategyChanges(
                    enabled=True, risk_fraction=min(params.risk_fraction, r.risk_floor)
                ),
                reason=f"earned its way back: {stats}",
            ),
            f"{ctx.symbol}: re-enabled {name} at risk {r.risk_floor:g} ({stats})",
        )


class SeedPolicy:
    """The spec's learning rules as written (win rate and net P&L after `min_trades`)."""

    name = "seed"

    def __init__(self, rules: LearningRules | None = None) -> None:
        self.rules = rules or LearningRules()
        self.judged_at: dict[str, int] = {}  # strategy -> trades when a rule last acted on it

    def allows(self, strategy: str, regime: str, ctx: DecisionContext) -> bool:
        return True

    def judge(self, ctx: DecisionContext, regime: str) -> tuple[list[StrategyTweak], list[str]]:
        tweaks: list[StrategyTweak] = []
        notes: list[str] = []
        for name in sorted(ctx.strategy_performance):
            perf = ctx.strategy_performance[name]
            params = ctx.strategy_state.get(name)
            if params is None or perf.trades < self.rules.min_trades:
                continue
            if self.judged_at.get(name) == perf.trades:
                continue  # already acted on these trades: wait for new ones
            judged = seed_judgement(name, perf, params, self.rules, regime, ctx.symbol)
            if judged is not None:
                tweaks.append(judged[0])
                notes.append(judged[1])
                self.judged_at[name] = perf.trades
        return tweaks, notes


def _win_rate(perf: StrategyPerformance) -> float:
    if perf.win_rate is not None:
        return perf.win_rate
    return perf.wins / perf.trades if perf.trades else 0.0


def seed_judgement(
    name: str,
    perf: StrategyPerformance,
    params: StrategyParams,
    rules: LearningRules,
    regime: str,
    symbol: str,
) -> tuple[StrategyTweak, str] | None:
    """The spec's learning rule for one strategy: (tweak, note), or None to leave it alone."""
    win = _win_rate(perf)
    stats = f"{perf.trades} trades, win rate {win:.2f}, net P&L {perf.net_pnl:.2f}"
    if win < rules.disable_win_rate_below or perf.net_pnl < 0:
        if not params.enabled:
            return None
        why = (
            f"win rate {win:.2f} < {rules.disable_win_rate_below:g}"
            if win < rules.disable_win_rate_below
            else f"net P&L {perf.net_pnl:.2f} < 0"
        )
        note = (
            f"{symbol}: disabled {name} after {stats} ({why}). Failed in: "
            f"{by_regime_text(perf, worst_first=True)}; regime now {regime}."
        )
        tweak = StrategyTweak(
            name=name, changes=StrategyChanges(enabled=False), reason=f"{why} over {stats}"
        )
        return tweak, note
    if win > rules.boost_win_rate_above and perf.net_pnl > 0 and params.enabled:
        new = round(min(rules.risk_cap, params.risk_fraction + rules.risk_step), 6)
        if new <= params.risk_fraction:
            return None  # already at the cap
        note = (
            f"{symbol}: raised {name} risk_fraction {params.risk_fraction:g} -> {new:g} after "
            f"{stats}. Worked in: {by_regime_text(perf, worst_first=False)}; "
            f"regime now {regime}."
        )
        tweak = StrategyTweak(
            name=name,
            changes=StrategyChanges(risk_fraction=new),
            reason=f"win rate {win:.2f} > {rules.boost_win_rate_above:g} and net P&L > 0 "
            f"over {stats}",
        )
        return tweak, note
    return None


def by_regime_text(perf: StrategyPerformance, worst_first: bool) -> str:
    """The regimes a strategy traded in, worst (or best) net P&L first."""
    if not perf.by_regime:
        return "no per-regime breakdown"
    items = sorted(
        perf.by_regime.items(),
        key=lambda kv: (kv[1].get("net_pnl", 0.0) * (1 if worst_first else -1), kv[0]),
    )
    parts = []
    for regime, s in items[:3]:
        fields = ", ".join(
            f"{k} {s[k]:.2f}" if isinstance(s[k], float) else f"{k} {s[k]}"
            for k in ("trades", "win_rate", "net_pnl")
            if k in s
        )
        parts.append(f"{regime} ({fields})")
    return "; ".join(parts)


class FrozenPolicy:
    """No learning at all (`--no-learning`): no tweaks, no regime blocks."""

    name = "off"

    def allows(self, strategy: str, regime: str, ctx: DecisionContext) -> bool:
        return True

    def judge(self, ctx: DecisionContext, regime: str) -> tuple[list[StrategyTweak], list[str]]:
        return [], []


def make_policy(
    name: str | LearningPolicy | None, rules: LearningRules | None = None
) -> LearningPolicy:
    """The policy `--learning` names (default: expectancy; "off" for a frozen agent)."""
    if name is None or name == "expectancy":
        return ExpectancyPolicy()
    if name == "seed":
        return SeedPolicy(rules)
    if name == "off":
        return FrozenPolicy()
    if isinstance(name, str):
        raise ValueError(f"learning policy {name!r}: choose one of {', '.join(POLICIES)}")
    return name
