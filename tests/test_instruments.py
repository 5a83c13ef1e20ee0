from __future__ import annotations

import numpy as np
import pytest

from fabio.errors import InstrumentError
from fabio.instruments import parse_symbol, spec_for


@pytest.mark.parametrize(
    ("symbol", "ref", "year", "contract_id"),
    [
        ("NQZ5", 2025, 2025, "CON.F.US.ENQ.Z25"),
        ("ESH4", 2023, 2024, "CON.F.US.EP.H24"),
        ("ESH23-CME", 2023, 2023, "CON.F.US.EP.H23"),
        ("mnqu2024", 2030, 2024, "CON.F.US.MNQ.U24"),
        ("MESM6", 2026, 2026, "CON.F.US.MES.M26"),
    ],
)
def test_parse_symbol(symbol: str, ref: int, year: int, contract_id: str) -> None:
    c = parse_symbol(symbol, ref)
    assert c.year == year
    assert c.projectx_contract_id == contract_id


def test_root_only_and_specs() -> None:
    c = parse_symbol("es")
    assert c.symbol == "ES" and c.projectx_contract_id is None
    assert spec_for("NQ").tick_value == 5.0
    assert spec_for("MES").mini_equivalent == 0.1
    assert spec_for("ES").tick_size * spec_for("ES").multiplier == spec_for("ES").tick_value


@pytest.mark.parametrize("bad", ["XYZ", "ESF4", "NQZ123", "", "ES Z5"])
def test_bad_symbols(bad: str) -> None:
    with pytest.raises(InstrumentError):
        parse_symbol(bad)


def test_price_ticks_round_trip_and_grid() -> None:
    es = spec_for("ES")
    ticks, off = es.prices_to_ticks(np.array([4128.25, 4128.3, 0.25]))
    assert ticks.tolist() == [16513, 16513, 1]
    assert off.tolist() == [False, True, False]
    assert es.to_price(16513) == 4128.25
