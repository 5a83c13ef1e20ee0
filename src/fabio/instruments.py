"""Contract specifications for the CME index futures Fabio trades, and symbol parsing.

`ES`, `NQ`, `MES`, `MNQ`: tick 0.25 index points. A symbol is a root alone (`ES`, used for
synthetic or continuous data) or a root with a contract month (`NQZ5`, `ESH23`, `ESH2024`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from fabio.errors import InstrumentError

MONTH_CODES = {"H": 3, "M": 6, "U": 9, "Z": 12}
ALL_MONTH_CODES = "FGHJKMNQUVXZ"


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static facts of one futures product (FACTS.md §1)."""

    root: str
    name: str
    tick_size: float
    tick_value: float
    multiplier: float
    projectx_root: str
    mini_equivalent: float  # 1 for minis, 0.1 for micros (TopstepX counts micros 10:1)
    typical_daily_volume: int

    def to_ticks(self, price: float) -> int:
        """Price in index points to integer ticks (round half to even; call on-grid prices)."""
        return round(price / self.tick_size)

    def to_price(self, ticks: int | float) -> float:
        return float(ticks) * self.tick_size

    def prices_to_ticks(
        self, prices: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Convert float prices to ticks; also return a mask of prices off the tick grid."""
        scaled = np.asarray(prices, dtype=np.float64) / self.tick_size
        ticks = np.rint(scaled)
        off_grid = np.abs(scaled - ticks) > 1e-6
        return ticks.astype(np.int64), off_grid


SPECS: dict[str, InstrumentSpec] = {
    "ES": InstrumentSpec("ES", "E-mini S&P 500", 0.25, 12.50, 50.0, "EP", 1.0, 1_900_000),
    "MES": InstrumentSpec("MES", "Micro E-mini S&P 500", 0.25, 1.25, 5.0, "MES", 0.1, 1_300_000),
    "NQ": InstrumentSpec("NQ", "E-mini Nasdaq-100", 0.25, 5.00, 20.0, "ENQ", 1.0, 650_000),
    "MNQ": InstrumentSpec("MNQ", "Micro E-mini Nasdaq-100", 0.25, 0.50, 2.0, "MNQ", 0.1, 1_400_000),
}


@dataclass(frozen=True, slots=True)
class Contract:
    """A product and, when known, its contract month."""

    spec: InstrumentSpec
    month_code: str | None = None
    year: int | None = None

    @property
    def symbol(self) -> str:
        """The short symbol, e.g. `NQZ5`, or the root alone."""
        if self.month_code is None or self.year is None:
            return self.spec.root
        return f"{self.spec.root}{self.month_code}{self.year % 10}"

    @property
    def projectx_contract_id(self) -> str | None:
        """The TopstepX / ProjectX id, e.g. `CON.F.US.ENQ.Z25`."""
        if self.month_code is None or self.year is None:
            return None
        return f"CON.F.US.{self.spec.projectx_root}.{self.month_code}{self.year % 100:02d}"

    @property
    def expiry_month(self) -> date | None:
        if self.month_code is None or self.year is None:
            return None
        return date(self.year, ALL_MONTH_CODES.index(self.month_code) + 1, 1)


_SYMBOL_RE = re.compile(r"^(?P<root>MNQ|MES|NQ|ES)(?:(?P<month>[FGHJKMNQUVXZ])(?P<year>\d{1,4}))?$")


def _resolve_year(digits: str, ref_year: int) -> int:
    if len(digits) == 4:
        return int(digits)
    if len(digits) == 3:
        raise InstrumentError(f"contract year '{digits}' must have 1, 2 or 4 digits")
    modulus = 10 ** len(digits)
    value = int(digits)
    # The earliest year >= ref_year - 1 that ends in these digits: a contract is listed at
    # most about a year ahead, and data is rarely read long after the fact.
    base = (ref_year - 1) - ((ref_year - 1) % modulus)
    year = base + value
    if year < ref_year - 1:
        year += modulus
    return year


def parse_symbol(symbol: str, ref_year: int | None = None) -> Contract:
    """Parse `NQZ5`, `ESH23`, `MNQU2024`, `ES` (case-insensitive, an exchange suffix allowed).

    A one- or two-digit year resolves to the first matching year from `ref_year - 1` on
    (`ref_year` is the data's year when known, else the current year).
    """
    cleaned = symbol.strip().upper()
    cleaned = re.split(r"[-.]", cleaned, maxsplit=1)[0]  # ESH23-CME → ESH23
    match = _SYMBOL_RE.match(cleaned)
    if not match:
        supported = ", ".join(sorted(SPECS))
        raise InstrumentError(
            f"cannot parse symbol '{symbol}': expected a root ({supported}) optionally followed "
            "by a month code (H, M, U, Z) and a year, e.g. NQZ5 or ESH23"
        )
    spec = SPECS[match["root"]]
    if match["month"] is None:
        return Contract(spec)
    month = match["month"]
    if month not in MONTH_CODES:
        raise InstrumentError(
            f"symbol '{symbol}': {spec.root} trades the quarterly cycle H M U Z, not '{month}'"
        )
    ref = ref_year if ref_year is not None else date.today().year
    return Contract(spec, month, _resolve_year(match["year"], ref))


def spec_for(root: str) -> InstrumentSpec:
    try:
        return SPECS[root.upper()]
    except KeyError as exc:
        raise InstrumentError(
            f"unknown instrument '{root}': supported are {', '.join(sorted(SPECS))}"
        ) from exc
