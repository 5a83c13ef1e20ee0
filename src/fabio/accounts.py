"""A new account that keeps what the agent learned (`fabio new-account`).

A trader's next combine must not erase what the agent learned. For the paper/live logs folder,
`start_new_account` archives the current account's journals into `logs/accounts/<UTC time>/`
(moved, never deleted) and starts a fresh `execution.jsonl` whose first records are one
`learning_carry` per symbol (the old ledger's `learning_state()`: closed trades for statistics,
strategy state, shadow trades, re-/disable and risk-change times, and the notes to future self
from `llm_exchanges.jsonl`), the same record the backtest's `--accounts continuous` writes
(`fabio.events.learning_carry_event`). The balance and the risk limits are the configured
ones (ACCOUNT_PRESET / ACCOUNT_BALANCE): a journal with no fill starts at the starting balance.

Crash safety. The one commit point is the atomic rename of the new journal over
`execution.jsonl`; every step before it leaves the old account whole, every step after it only
tidies up:

1. take the folder's `RunLock` (refuse while a run trades on it), check the journal (no
   corruption, no conflict, no open position or order);
2. hard-link (copy where links are impossible) the account's files into
   `accounts/<stamp>.partial/` — the originals stay where they are;
3. write the new journal to `execution.jsonl.new-account` and fsync it;
4. rename it over `execution.jsonl` (the commit) and fsync the folder;
5. rename the archive to `accounts/<stamp>/` and unlink the other originals (their archived
   names keep the data).

A crash before 4 leaves the old account in place and a `.partial` archive of links to it; a
crash after 4 leaves the new account in place. The next `fabio new-account` (or
`recover_partial`) finishes or undoes it: the new journal's `learning_carry` names its archive
(`archive`), so a `.partial` folder it names is finished, any other is dropped (its files are
extra names of data still in place).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fabio.account_archive import (
    ACCOUNTS_DIR,
    NEW_JOURNAL,
    PARTIAL,
    account_files,
    finish,
    fsync_dir,
    link_or_copy,
    recover_partial,
    stamp,
)
from fabio.brain.notes import NoteStore
from fabio.errors import FabioError
from fabio.events import KillSwitchEvent, learning_carry_event
from fabio.execution.risk import RiskConfig
from fabio.instruments import parse_symbol
from fabio.journal import LLM_EXCHANGES, dumps_record, make_private_dir, read_journal
from fabio.killswitch import EXECUTION_JOURNAL
from fabio.runlock import RunLock
from fabio.strategies import StrategyParams
from fabio.wiring import journal_symbols, read_state


@dataclass(slots=True)
class NewAccount:
    """What `start_new_account` did."""

    archive: Path
    journal: Path
    symbols: list[str]
    moved: list[str] = field(default_factory=list)
    carried_trades: dict[str, int] = field(default_factory=dict)
    carried_shadow: dict[str, int] = field(default_factory=dict)
    carried_notes: dict[str, int] = field(default_factory=dict)
    kill_switch_kept: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "archive": str(self.archive),
            "journal": str(self.journal),
            "symbols": self.symbols,
            "moved": self.moved,
            "carried_trades": self.carried_trades,
            "carried_shadow": self.carried_shadow,
            "carried_notes": self.carried_notes,
            "kill_switch_kept": self.kill_switch_kept,
        }


def start_new_account(
    log_dir: Path,
    risk_config: RiskConfig | None = None,
    defaults: dict[str, StrategyParams] | None = None,
    secrets: tuple[str, ...] = (),
    now: datetime | None = None,
    step: Callable[[str], None] | None = None,
) -> NewAccount:
    """Archive the account in `log_dir` and start a new one that inherits its learning.

    `step(name)` is called between the steps (tests interrupt it there).
    """
    hook = step or (lambda _name: None)
    journal = log_dir / EXECUTION_JOURNAL
    if not journal.is_file():
        raise FabioError(f"{journal}: no journal, no account to archive (nothing to carry)")
    with RunLock(log_dir):
        recover_partial(log_dir)
        symbols = journal_symbols(log_dir)
        if not symbols:
            raise FabioError(f"{journal}: no symbol in the journal, nothing to carry")
        exchanges = read_journal(log_dir / LLM_EXCHANGES).records
        records: list[dict[str, Any]] = []
        when = stamp(now)
        final = log_dir / ACCOUNTS_DIR / when
        n = 1
        while final.exists() or final.with_name(final.name + PARTIAL).exists():
            n += 1
            final = log_dir / ACCOUNTS_DIR / f"{when}-{n}"
        archive_name = f"{ACCOUNTS_DIR}/{final.name}"
        result = NewAccount(archive=final, journal=journal, symbols=symbols)
        kill: KillSwitchEvent | None = None
        for symbol in symbols:
            view = read_state(parse_symbol(symbol), log_dir, risk_config, defaults)
            ledger = view.ledger
            if ledger.conflicts:
                raise FabioError(
                    f"{journal}: {ledger.conflicts[0]}: review it with `fabio state` first"
                )
            if ledger.open_trades or ledger.open_orders:
                raise FabioError(
                    f"{journal}: {symbol} has an open position or order "
                    f"({', '.join(sorted(ledger.open_trades)) or 'orders'}): flatten it and "
                    "let the run end before starting a new account"
                )
            notes = NoteStore(symbol)
            for rec in exchanges:
                notes.add_record(rec)
            notes.add_exported(ledger.carried_notes)
            state = {**ledger.learning_state(), "notes": notes.export()}
            records.append(learning_carry_event(symbol, state, archive_name).to_record())
            result.carried_trades[symbol] = len(state["trades"])
            result.carried_shadow[symbol] = len(state["shadow"])
            result.carried_notes[symbol] = len(state["notes"])
            status = ledger.risk.kill_switch_status()
            if status.get("engaged") and kill is None:
                kill = KillSwitchEvent(
                    ts_ns=int(status.get("ts_ns") or 0),
                    symbol=None,
                    engaged=True,
                    reason=f"kept from the previous account: {status.get('reason', '')}"[:300],
                    source=status.get("source") or "cli",
                )
        if kill is not None:  # an engaged kill switch is never dropped silently
            records.append(kill.to_record())
            result.kill_switch_kept = True
        # 2. the archive: links to the account's files, the originals stay in place
        partial = final.with_name(final.name + PARTIAL)
        make_private_dir(partial)
        for path in account_files(log_dir):
            link_or_copy(path, partial / path.name)
        fsync_dir(partial)
        hook("archived")
        # 3. the new journal beside the old one, durable before it replaces it
        tmp = log_dir / NEW_JOURNAL
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(dumps_record(_redacted(rec, secrets)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        hook("written")
        # 4. the commit: one atomic rename
        os.replace(tmp, journal)
        fsync_dir(log_dir)
        hook("committed")
        # 5. tidy up: the archive gets its name, the other originals leave the folder
        result.moved = [EXECUTION_JOURNAL, *finish(log_dir, partial, final)]
        return result


def _redacted(record: dict[str, Any], secrets: tuple[str, ...]) -> dict[str, Any]:
    if not secrets:
        return record
    from fabio.journal import redact

    return dict(json.loads(redact(json.dumps(record), secrets)))
