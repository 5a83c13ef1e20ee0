"""The chaos harness: kill -9 a live agent at random instants against `fabio gateway-sim`.

The simulator runs in this process on its own event loop and thread, served over real sockets
on 127.0.0.1; the agent is `fabio run --mode live` in a child process (`chaos_agent.py`: the
real live run with a brain that enters often). A seeded schedule picks, for every crash, one
scenario and its random waits:

- `random`: after a random time up;
- `after_send`: the moment the simulator receives an order of the agent, before it answers (the
  order is at the venue and filled; the agent never journals the answer);
- `in_position`: a random time into a position;
- `stop_cancelled`: the moment the venue cancels the agent's stop (POST /sim/cancel);
- `on_fill`: the moment a stop or target of the agent fills, before the agent hears of it;
- `hand_close`: a trader closes the position by hand (POST /sim/close), then a random time up;
- `hand_cancel_stop`: a trader cancels the stop by hand, then a random time up.

The agent stays down a random time while the simulator keeps matching (with a chance of a
hand-made close or stop cancellation meanwhile), then restarts on the same journal. After its
start reconciliation the replay is paused and the invariants are checked (each given a bounded
time to converge): the journal's position and balance equal the venue's (REST:
Position/searchOpen, Account/search), every venue fill of the agent's orders is journaled exactly
once (Trade/search against the journal's fills, by side, size and price), no customTag twice.
Watched all along in the simulator: no position without a working stop for more than a second
(wall) while the agent is up; no position the agent did not intend (a fill of its orders that
opens or adds to a position and is not an entry from flat); no protected position flattened by
the agent during trading hours.

A kill switch the agent engaged is counted and released at the next restart (an operator's
`fabio kill --release`), so the crashes that follow still trade. When the market reaches 14:45
CT the episode ends and the next starts on a fresh simulator (another synthetic market) and
journal at the open (an RTH agent has nothing to do overnight).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx

from fabio.brokers.projectx.models import PxOrderStatus, PxOrderType
from fabio.brokers.projectx.sim.run import SimServer, build_sim, open_feeds
from fabio.brokers.projectx.sim.server import GatewaySim
from fabio.config import Settings
from fabio.instruments import parse_symbol
from fabio.journal import read_journal
from fabio.killswitch import EXECUTION_JOURNAL, request_kill_switch
from fabio.timeutil import ns_to_datetime, parse_at
from fabio.wiring import read_state

from .chaos_agent import STRATEGY_PARAMS

CHILD = Path(__file__).with_name("chaos_agent.py")
ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "PRAC-V2-SIM-50K"
SCENARIOS = (
    "random",
    "after_send",
    "in_position",
    "stop_cancelled",
    "on_fill",
    "hand_close",
    "hand_cancel_stop",
)
INVARIANTS = (
    "position_matches_venue",
    "balance_matches_venue",
    "fill_not_journaled",
    "fill_journaled_twice",
    "duplicate_tag",
    "unprotected_over_1s",
    "unintended_position",
    "protected_flattened_in_rth",
)
RTH_OPEN, EPISODE_END, FLAT_TIME = dtime(8, 30), dtime(14, 45), dtime(15, 8)


@dataclass
class ChaosConfig:
    crashes: int = 5
    speed: float = 60.0
    seed: int = 1
    symbol: str = "ES"
    first_session: str = "2024-01-02"
    up_sec: tuple[float, float] = (0.3, 3.0)  # wall, random waits while the agent is up
    down_sec: tuple[float, float] = (0.5, 6.0)  # wall, the agent down
    hand_action_chance: float = 0.3  # each of close / cancel stop while the agent is down
    condition_timeout_sec: float = 60.0  # bound on waiting for a position, an order, a fill
    # Bound on waiting for a stop or target to fill once in a position (`on_fill`): a bracket
    # 8-12 ticks wide takes a quarter of an hour of market time at the median. None: 3 times
    # condition_timeout_sec.
    fill_timeout_sec: float | None = None
    start_timeout_sec: float = 60.0  # bound on an agent start (login to reconciliation)
    settle_timeout_sec: float = 8.0  # bound on the journal converging to the venue
    unprotected_grace_sec: float = 1.0
    log: Callable[[str], None] | None = None
    scenarios: tuple[str, ...] = SCENARIOS  # drawn in a seeded order, each once per round
    # Each crash on a fresh simulator and journal: one crash's damage cannot hide the next's
    # (a phantom position stops the agent from entering again).
    isolate: bool = False
    keep_dir: Path | None = None  # journals kept there (default: a temporary folder, removed)
    # What bounds a run in wall time at low speed (1x): the synthetic market's volatility
    # (SyntheticConfig.volatility: how soon a bracket's leg fills), the agent's decision interval
    # (LLM_DECISION_INTERVAL_*, market seconds: how soon it enters when flat; None: its
    # settings) and its bracket's width in ticks (stop and target drawn in it; the engine widens a
    # stop to its minimum of 4 ticks).
    volatility: float = 1.0
    decision_interval_sec: float | None = None
    bracket_ticks: tuple[int, int] = (8, 12)


@dataclass
class CrashRecord:
    index: int
    scenario: str
    reached: bool
    down_sec: float
    hand_actions: list[str]
    violations: Counter[str]
    details: list[str]
    kill_switch_engaged: bool
    longest_unprotected_sec: float = 0.0  # wall, while the agent was up (stop lost to re-placed)


@dataclass
class ChaosReport:
    config: ChaosConfig
    crashes: list[CrashRecord] = field(default_factory=list)
    wall_sec: float = 0.0
    episodes: int = 0
    self_exits: list[str] = field(default_factory=list)  # agents that ended without a kill

    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.crashes:
            out.update(c.violations)
        return out

    def violations(self) -> int:
        """Every violation of an invariant over the run (what must be 0)."""
        totals = self.totals()
        return sum(totals[k] for k in INVARIANTS)

    def crashes_violating(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.crashes:
            out.update({k: 1 for k, v in c.violations.items() if v})
        return out

    def table(self) -> str:
        totals, crashes = self.totals(), self.crashes_violating()
        lines = [f"{'invariant':<30} {'crashes violating':>18} {'count':>7}"]
        for name in INVARIANTS:
            lines.append(f"{name:<30} {crashes[name]:>18} {totals[name]:>7}")
        lines.append(
            f"{'total':<30} "
            f"{sum(1 for c in self.crashes if any(c.violations[k] for k in INVARIANTS)):>18} "
            f"{self.violations():>7}"
        )
        by = Counter(c.scenario for c in self.crashes)
        reached = Counter(c.scenario for c in self.crashes if c.reached)
        lines.append(
            "scenarios (reached/run): "
            + ", ".join(f"{s} {reached[s]}/{by[s]}" for s in SCENARIOS if by[s])
        )
        lines.append(
            f"kill switch found engaged at {sum(c.kill_switch_engaged for c in self.crashes)} "
            f"restarts (released); {self.totals()['unintended_while_down']} position(s) opened "
            "by an order of the agent while it was down (not counted); "
            f"{len(self.self_exits)} agent(s) exited by themselves; "
            f"{self.episodes} episode(s); {len(self.crashes)} crashes in "
            f"{self.wall_sec:.0f} s wall at {self.config.speed:g}x, seed {self.config.seed}"
        )
        spans = sorted(c.longest_unprotected_sec for c in self.crashes)
        if spans:
            lines.append(
                "longest time without a working stop while the agent was up, per crash (wall): "
                f"median {spans[len(spans) // 2]:.2f} s, max {spans[-1]:.2f} s"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "crashes": len(self.crashes),
            "speed": self.config.speed,
            "seed": self.config.seed,
            "wall_sec": round(self.wall_sec, 1),
            "agent_self_exits": self.self_exits,
            "totals": {k: self.totals()[k] for k in INVARIANTS},
            "crashes_violating": {k: self.crashes_violating()[k] for k in INVARIANTS},
            "per_crash": [
                {
                    "index": c.index,
                    "scenario": c.scenario,
                    "reached": c.reached,
                    "down_sec": round(c.down_sec, 2),
                    "hand_actions": c.hand_actions,
                    "violations": dict(c.violations),
                    "details": c.details,
                    "kill_switch_engaged": c.kill_switch_engaged,
                    "longest_unprotected_sec": round(c.longest_unprotected_sec, 3),
                }
                for c in self.crashes
            ],
        }


class SimHost:
    """`fabio gateway-sim` on its own loop in a thread, with the watchers of the invariants
    that need every venue event (they run in the simulator's thread, in its loop)."""

    def __init__(
        self, speed: float, session: str, seed: int, grace_sec: float, volatility: float = 1.0
    ) -> None:
        feeds = open_feeds([], ["ES"], days=1, seed=seed, volatility=volatility)
        start = parse_at(f"{session} 08:30")
        self.sim: GatewaySim = build_sim(feeds, speed, None, start_ns=start)
        self.server = SimServer(self.sim)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()
        self.grace_sec = grace_sec
        self.lock = threading.Lock()
        # The agent: its pid, and since when it is up past its start reconciliation.
        self.pid: int | None = None
        self.up_since: float | None = None
        self.trigger: Callable[[str, dict[str, Any]], bool] | None = None
        self.killed = threading.Event()
        self.violations: Counter[str] = Counter()
        self.details: list[str] = []
        self._unprotected_since: dict[str, float] = {}
        self._flagged: set[str] = set()
        self.longest_unprotected = 0.0  # wall seconds, while the agent is up (since take())
        self._last_protected: dict[str, float] = {}
        self.sim.observers.append(self._observe)

    # ------------------------------------------------------------------ lifecycle
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        self.watcher = self.loop.create_task(self._watch())
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the simulator did not start")

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.watcher.cancel)
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in the simulator's loop (its state is only touched there) and return."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(15)

    def _note(self, name: str, text: str) -> None:
        with self.lock:
            self.violations[name] += 1
            self.details.append(f"{name}: {text}")

    def _longest(self, span: float) -> None:
        with self.lock:
            self.longest_unprotected = max(self.longest_unprotected, span)

    def take(self) -> tuple[Counter[str], list[str], float]:
        with self.lock:
            out, details, longest = self.violations, self.details, self.longest_unprotected
            self.violations, self.details, self.longest_unprotected = Counter(), [], 0.0
            return out, details, longest

    # ------------------------------------------------------------------ watchers
    def _stop_cover(self, cid: str, qty: int) -> int:
        return sum(
            o.remaining
            for o in self.sim.venue.orders.values()
            if o.contract_id == cid
            and o.type == PxOrderType.STOP
            and o.status == PxOrderStatus.OPEN
            and o.sign == (-1 if qty > 0 else 1)
        )

    async def _watch(self) -> None:
        while True:
            now = time.monotonic()
            for cid, pos in self.sim.venue.positions.items():
                covered = pos.qty == 0 or self._stop_cover(cid, pos.qty) >= abs(pos.qty)
                if covered:
                    if pos.qty:
                        self._last_protected[cid] = now
                    began = self._unprotected_since.pop(cid, None)
                    if began is not None and self.up_since is not None:
                        self._longest(now - max(began, self.up_since))
                    self._flagged.discard(cid)
                    continue
                if self.up_since is None:  # down: nobody can protect it
                    self._unprotected_since.pop(cid, None)
                    continue
                since = max(self._unprotected_since.setdefault(cid, now), self.up_since)
                self._longest(now - since)
                if now - since > self.grace_sec and cid not in self._flagged:
                    self._flagged.add(cid)
                    self._note(
                        "unprotected_over_1s",
                        f"{cid} {pos.qty:+d} without a working stop for {now - since:.1f} s "
                        "while the agent is up",
                    )
            await asyncio.sleep(0.05)

    def _observe(self, target: str, payload: dict[str, Any]) -> None:
        if target == "GatewayUserTrade":
            self._on_trade(payload)
        trigger = self.trigger
        if trigger is not None and self.pid is not None and trigger(target, payload):
            self.trigger = None
            self.kill()

    def kill(self) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.up_since = None
            self.killed.set()

    def _on_trade(self, t: dict[str, Any]) -> None:
        venue = self.sim.venue
        order = venue.orders[int(t["orderId"])]
        if order.origin == "manual":
            return
        cid = str(t["contractId"])
        after = venue.positions[cid].qty
        signed = int(t["size"]) * (1 if int(t["side"]) == 0 else -1)
        before = after - signed
        is_entry = order.custom_tag is not None and order.bracket is not None
        if abs(after) > abs(before) or (before and after and (before > 0) != (after > 0)):
            if not (is_entry and before == 0):
                what = "entry" if is_entry else ("leg" if order.parent_id else order.origin)
                # While the agent is down nobody can cancel an order left working: reported,
                # not counted (the restart must then resolve the position it finds).
                self._note(
                    "unintended_position" if self.up_since is not None else "unintended_while_down",
                    f"{cid} {before:+d} -> {after:+d} by order {order.id} ({what}, "
                    f"tag {order.custom_tag})",
                )
            return
        flatten = order.parent_id is None and order.type == PxOrderType.MARKET
        if not flatten or before == 0:
            return
        clock = ns_to_datetime(venue.now_ns).time()
        recent = time.monotonic() - self._last_protected.get(cid, -1e9) < 2.0
        if (recent or self._stop_cover(cid, before) >= abs(before)) and (
            RTH_OPEN <= clock < FLAT_TIME
        ):
            self._note(
                "protected_flattened_in_rth",
                f"{cid} {before:+d} -> {after:+d} at {clock} by order {order.id} "
                f"({order.origin}, tag {order.custom_tag}) while its stop worked",
            )


class Agent:
    """The `fabio run --mode live` child and its stdout."""

    def __init__(
        self,
        url: str,
        log_dir: Path,
        seed: int,
        decision_interval_sec: float | None = None,
        bracket_ticks: tuple[int, int] = (8, 12),
    ) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TOPSTEP_", "OPENAI_", "ALERT_", "ACCOUNT_"))
        }
        env.update(
            MODE="live",
            TOPSTEP_USERNAME="chaos",
            TOPSTEP_API_KEY="chaos-key",
            TOPSTEP_ACCOUNT_ID=ACCOUNT,
            LOGS_DIR=str(log_dir),
            XDG_CACHE_HOME=str(log_dir / "cache"),  # the account lock, per journal
            STRATEGIES_FILE=str(log_dir / "strategies.json"),
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
            CHAOS_BRACKET_TICKS=f"{bracket_ticks[0]},{bracket_ticks[1]}",
            # The strategies' own limits (20 a session each): the account's default of 10 a day
            # would leave one journal flat, every moment unreached, after 10 trades.
            MAX_TRADES_PER_DAY=str(
                int(sum(p["max_trades_per_session"] for p in STRATEGY_PARAMS.values()))
            ),
        )
        if decision_interval_sec is not None:
            for band in ("DEFAULT", "OUTER_BAND", "INNER_BAND"):
                env[f"LLM_DECISION_INTERVAL_{band}"] = f"{decision_interval_sec:g}"
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(seed), "--gateway", url, "--quiet"],
            env=env,
            cwd=log_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.started = threading.Event()  # the banner: connected and reconciled
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            if "Live session" in line:
                self.started.set()
        self.started.set()  # ended: nobody waits for a banner any more

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.output[-n:])


@dataclass
class VenueView:
    position: int
    balance: float
    fills: list[dict[str, Any]]
    duplicate_tags: list[str]


class Harness:
    def __init__(self, config: ChaosConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.contract = parse_symbol(config.symbol)
        self.host: SimHost | None = None
        self.agent: Agent | None = None
        self.log_dir: Path | None = None
        self.http: httpx.Client | None = None
        self.token = ""
        self.cid = ""
        self._tmp = tempfile.TemporaryDirectory(prefix="fabio-chaos-")
        self.base = config.keep_dir or Path(self._tmp.name)
        self.episode = 0
        self.exited: list[str] = []  # agents that ended without being killed
        self.report = ChaosReport(config)

    def say(self, text: str) -> None:
        if self.cfg.log is not None:
            self.cfg.log(text)

    # ------------------------------------------------------------------ episodes
    def _open_episode(self) -> None:
        self._close_episode()
        self.host = SimHost(
            self.cfg.speed,
            self.cfg.first_session,
            self.cfg.seed * 1000 + self.episode,
            self.cfg.unprotected_grace_sec,
            self.cfg.volatility,
        )
        self.host.start()
        self.log_dir = self.base / f"episode-{self.episode}"
        (self.log_dir / "cache").mkdir(parents=True)
        (self.log_dir / "strategies.json").write_text(json.dumps(STRATEGY_PARAMS))
        self.http = httpx.Client(base_url=self.host.url, timeout=15)
        login = self._post("/api/Auth/loginKey", {"userName": "harness", "apiKey": "k"})
        self.token = str(login["token"])
        self.cid = next(iter(self.host.sim.venue.contracts))
        self.episode += 1
        self.report.episodes += 1
        self.say(f"episode {self.episode}: simulator on {self.host.url}, journal {self.log_dir}")

    def _close_episode(self) -> None:
        if self.agent is not None:
            self._kill_agent()
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.host is not None:
            self.host.stop()
            self.host = None

    def close(self) -> None:
        self._close_episode()
        self._tmp.cleanup()

    # ------------------------------------------------------------------ venue (REST)
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        reply = self.http.post(path, json=body, headers=headers)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data

    def _get(self, path: str) -> dict[str, Any]:
        assert self.http is not None
        reply = self.http.get(path)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data

    def venue(self) -> VenueView:
        assert self.host is not None
        acct_id = self.host.sim.venue.account.id
        positions = self._post("/api/Position/searchOpen", {"accountId": acct_id})["positions"]
        accounts = self._post("/api/Account/search", {"onlyActiveAccounts": True})["accounts"]
        trades = self._post(
            "/api/Trade/search",
            {"accountId": acct_id, "startTimestamp": "2000-01-01T00:00:00Z"},
        )["trades"]
        orders = self._get("/sim/orders")
        origin = {o["id"]: o["origin"] for o in orders["orders"]}
        pos = 0
        for p in positions:
            if p["contractId"] == self.cid:
                pos += int(p["size"]) * (1 if int(p["type"]) == 1 else -1)
        tick = self.contract.spec.tick_size
        fills = [
            {
                "side": 1 if int(t["side"]) == 0 else -1,
                "qty": int(t["size"]),
                "price_ticks": round(float(t["price"]) / tick),
                "ours": origin.get(t["orderId"]) != "manual",
                "order": t["orderId"],
            }
            for t in trades
            if t["contractId"] == self.cid and not t.get("voided")
        ]
        balance = next(float(a["balance"]) for a in accounts if a["name"] == ACCOUNT)
        return VenueView(pos, balance, fills, list(orders["duplicate_tags"]))

    def market_clock(self) -> dtime:
        state = self._get("/sim/state")
        return ns_to_datetime(int(state["replay"]["market_ts"])).time()

    # ------------------------------------------------------------------ journal
    def journal(self) -> tuple[int, float, list[dict[str, Any]], bool]:
        assert self.log_dir is not None
        settings = Settings(_env_file=None, log_dir=self.log_dir)  # type: ignore[call-arg]
        view = read_state(self.contract, self.log_dir, settings.risk_config())
        ledger = view.ledger
        position = sum(t.qty for t in ledger.open_trades.values())
        fills = [
            r
            for r in read_journal(self.log_dir / EXECUTION_JOURNAL).records
            if r.get("type") == "fill" and r.get("symbol") == self.contract.symbol
        ]
        engaged = bool(ledger.risk.kill_switch_status()["engaged"])
        # The venue's balance has paid the open trades' entry fees already; the journal's
        # realised balance books them when the trade closes.
        balance = ledger.risk.account.balance - sum(t.fees for t in ledger.open_trades.values())
        return position, balance, fills, engaged

    # ------------------------------------------------------------------ the agent
    def _start_agent(self) -> None:
        assert self.host is not None and self.log_dir is not None
        if self.agent is not None:
            raise RuntimeError("an agent is already running")
        self.agent = Agent(
            self.host.url,
            self.log_dir,
            self.rng.randrange(1 << 30),
            self.cfg.decision_interval_sec,
            self.cfg.bracket_ticks,
        )
        self.host.pid = self.agent.proc.pid
        self.host.killed.clear()
        if not self.agent.started.wait(self.cfg.start_timeout_sec) or self.agent.proc.poll():
            raise RuntimeError(f"the agent did not start:\n{self.agent.tail()}")
        self.host.up_since = time.monotonic()

    def _kill_agent(self) -> None:
        assert self.host is not None and self.agent is not None
        rc = self.agent.proc.poll()
        if rc is not None and not self.host.killed.is_set():
            self.exited.append(f"the agent exited by itself ({rc}):\n{self.agent.tail()}")
        self.host.trigger = None
        self.host.kill()
        self.agent.proc.wait(30)
        self.agent.reader.join(10)
        self.host.pid = None
        self.agent = None

    def _wait(self, cond: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.agent is not None and self.agent.proc.poll() is not None:
                return cond()
            if cond():
                return True
            time.sleep(0.02)
        return False

    def _in_position(self) -> bool:
        assert self.host is not None
        return bool(self.host.call(lambda: self._venue_qty() != 0))

    def _venue_qty(self) -> int:
        assert self.host is not None
        pos = self.host.sim.venue.positions.get(self.cid)
        return 0 if pos is None else pos.qty

    def _arm(
        self, trigger: Callable[[str, dict[str, Any]], bool], timeout: float | None = None
    ) -> bool:
        """Kill the agent from the simulator's thread the moment `trigger` says so."""
        assert self.host is not None
        self.host.trigger = trigger
        hit = self.host.killed.wait(timeout or self.cfg.condition_timeout_sec)
        self.host.trigger = None
        return hit

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    def _hand_close(self) -> bool:
        return bool(self._post("/sim/close", {"contractId": self.cid})["success"])

    def _hand_cancel_stop(self) -> bool:
        return bool(self._post("/sim/cancel", {"contractId": self.cid})["cancelled"])

    def _crash(self, scenario: str) -> bool:
        """Bring the agent down the scenario's way; whether the scenario's moment was reached
        (if not, the agent is killed at the end of the wait anyway)."""
        assert self.host is not None
        host = self.host
        wait = self._uniform(self.cfg.up_sec)
        reached = True
        if scenario == "random":
            time.sleep(wait)
        elif scenario == "after_send":
            seen = set(host.call(lambda: list(host.sim.venue.orders)))

            def new_order(target: str, p: dict[str, Any]) -> bool:
                return (
                    target == "GatewayUserOrder"
                    and p.get("customTag") is not None
                    and p["id"] not in seen
                )

            reached = self._arm(new_order)
        elif scenario == "on_fill":
            reached = self._wait(self._in_position, self.cfg.condition_timeout_sec)

            def leg_fill(target: str, p: dict[str, Any]) -> bool:
                if target != "GatewayUserTrade":
                    return False
                order = host.sim.venue.orders[int(p["orderId"])]
                return order.parent_id is not None or (
                    order.custom_tag is not None and order.bracket is None
                )

            patience = self.cfg.fill_timeout_sec or 3 * self.cfg.condition_timeout_sec
            reached = reached and self._arm(leg_fill, patience)
        elif scenario == "stop_cancelled":
            reached = self._wait(self._in_position, self.cfg.condition_timeout_sec)
            if reached:

                def cancelled(target: str, p: dict[str, Any]) -> bool:
                    return (
                        target == "GatewayUserOrder"
                        and p["type"] == PxOrderType.STOP
                        and p["status"] == PxOrderStatus.CANCELLED
                    )

                host.trigger = cancelled
                reached = self._hand_cancel_stop() and host.killed.wait(5)
        else:  # in_position, hand_close, hand_cancel_stop
            reached = self._wait(self._in_position, self.cfg.condition_timeout_sec)
            if reached and scenario == "hand_close":
                reached = self._hand_close()
            elif reached and scenario == "hand_cancel_stop":
                reached = self._hand_cancel_stop()
            time.sleep(wait)
        self._kill_agent()
        return reached

    # ------------------------------------------------------------------ invariants
    def check(self) -> tuple[Counter[str], list[str], bool]:
        """Compare the journal with the venue, letting them converge for a bounded time."""
        last: tuple[Counter[str], list[str], bool] = (Counter(), [], False)
        end = time.monotonic() + self.cfg.settle_timeout_sec
        while True:
            try:
                last = self._compare()
            except (OSError, ValueError) as exc:  # a journal line being written
                last = (Counter({"journal_unreadable": 1}), [str(exc)], False)
            if not sum(last[0].values()) or time.monotonic() > end:
                return last
            time.sleep(0.1)

    def _compare(self) -> tuple[Counter[str], list[str], bool]:
        venue = self.venue()
        position, balance, journal_fills, engaged = self.journal()
        found: Counter[str] = Counter()
        details: list[str] = []
        if position != venue.position:
            found["position_matches_venue"] += 1
            details.append(f"journal position {position:+d}, venue {venue.position:+d}")
        if abs(balance - venue.balance) > 0.02:
            found["balance_matches_venue"] += 1
            details.append(f"journal balance {balance:,.2f}, venue {venue.balance:,.2f}")
        key = ("side", "qty", "price_ticks")
        ours = Counter(tuple(f[k] for k in key) for f in venue.fills if f["ours"])
        manual = Counter(tuple(f[k] for k in key) for f in venue.fills if not f["ours"])
        journaled = Counter(tuple(int(r[k]) for k in key) for r in journal_fills)
        missing = ours - journaled
        extra = journaled - ours - manual  # a hand-made fill journaled as such is not ours
        if missing:
            found["fill_not_journaled"] += sum(missing.values())
            details.append(f"venue fills of ours not journaled: {dict(missing)}")
        if extra:
            found["fill_journaled_twice"] += sum(extra.values())
            details.append(f"journal fills the venue does not explain: {dict(extra)}")
        if venue.duplicate_tags:
            found["duplicate_tag"] += len(venue.duplicate_tags)
            details.append(f"duplicate tags {venue.duplicate_tags}")
        return found, details, engaged

    # ------------------------------------------------------------------ the run
    def run(self) -> ChaosReport:
        began = time.monotonic()
        order = list(self.cfg.scenarios)
        unknown = set(order) - set(SCENARIOS)
        if unknown or not order:
            raise ValueError(f"scenarios: choose among {', '.join(SCENARIOS)}")
        try:
            self._open_episode()
            self._start_agent()
            seen_dups: set[str] = set()
            for i in range(self.cfg.crashes):
                if (self.cfg.isolate and i > 0) or self.market_clock() >= EPISODE_END:
                    self._open_episode()
                    self._start_agent()
                    seen_dups = set()
                if i % len(order) == 0:
                    self.rng.shuffle(order)
                scenario = order[i % len(order)]
                reached = self._crash(scenario)
                down = self._uniform(self.cfg.down_sec)
                hand: list[str] = []
                t0 = time.monotonic()
                for action, do in (
                    ("close", self._hand_close),
                    ("cancel stop", self._hand_cancel_stop),
                ):
                    if self.rng.random() < self.cfg.hand_action_chance and self._in_position():
                        time.sleep(self.rng.uniform(0, down / 2))
                        if do():
                            hand.append(action)
                time.sleep(max(0.0, down - (time.monotonic() - t0)))
                engaged = self._release_kill_switch()
                self._start_agent()
                self._post("/sim/pause", {})
                try:
                    found, details, _ = self.check()
                finally:
                    self._post("/sim/resume", {})
                assert self.host is not None
                watched, watch_details, longest = self.host.take()
                found.update(watched)
                details.extend(watch_details)
                dups = set(self.venue().duplicate_tags)
                if dups <= seen_dups:  # counted once, at the crash that made it
                    found.pop("duplicate_tag", None)
                seen_dups |= dups
                found = Counter({k: v for k, v in found.items() if v})
                details.extend(self.exited)
                self.report.self_exits.extend(self.exited)
                self.exited = []
                record = CrashRecord(
                    i, scenario, reached, down, hand, found, details, engaged, longest
                )
                self.report.crashes.append(record)
                self.say(
                    f"crash {i + 1}/{self.cfg.crashes} {scenario}"
                    f"{'' if reached else ' (moment not reached)'}, down {down:.1f} s"
                    f"{', by hand: ' + ', '.join(hand) if hand else ''}: "
                    + ("ok" if not found else "; ".join(details))
                    + (f" (unprotected {longest:.2f} s at most)" if longest else "")
                )
        except KeyboardInterrupt:  # Ctrl-C: the report of the crashes done (a long 1x run)
            self.say(f"interrupted: {len(self.report.crashes)} crash(es) done")
        finally:
            self.report.wall_sec = time.monotonic() - began
            self.close()
        return self.report

    def _release_kill_switch(self) -> bool:
        """An operator's `fabio kill --release` before the restart, when the agent engaged it."""
        assert self.log_dir is not None and self.host is not None
        *_, engaged = self.journal()
        if engaged:
            now = self.host.call(lambda: self.host.sim.venue.now_ns if self.host else 0)
            request_kill_switch(
                self.log_dir, False, "chaos harness: operator release", "cli", (), now
            )
        return engaged


def run_chaos(config: ChaosConfig) -> ChaosReport:
    return Harness(config).run()
