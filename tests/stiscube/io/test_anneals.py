"""Anneal-period table: reading the STScI layout, ECSV round trip, date -> period lookup."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.time import Time
from hypothesis import given, settings
from hypothesis import strategies as st

from stiscube import AnnealPeriodError, AnnealTableError
from stiscube.io.anneals import (
    COLUMNS,
    AnnealPeriod,
    AnnealTable,
    format_exposure_mix,
    parse_exposure_mix,
)
from stores.common.dates import to_mjd

#: real rows of the STScI table (a copy of the STScI anneal table, 1997 rows)
REAL_TABLE = Path(__file__).resolve().parents[2] / "data" / "anneal_periods_1997.csv"


@pytest.fixture(scope="module")
def real() -> AnnealTable:
    return AnnealTable.read(REAL_TABLE)


def _mjd(text: str) -> float:
    """MJD of a UTC 'YYYY-MM-DD HH:MM:SS', computed independently with the calendar."""
    stamp = dt.datetime.fromisoformat(text)
    return (stamp - dt.datetime(1858, 11, 17)).total_seconds() / 86400.0


def test_real_table_reads_all_rows_and_columns(real):
    raw = pd.read_csv(REAL_TABLE, dtype=str, keep_default_na=False)
    assert len(real) == len(raw) == 8
    assert list(raw.columns) == list(COLUMNS)
    assert real.numbers.tolist() == [int(v) for v in raw["number"]]
    np.testing.assert_allclose(real.start_mjd, [_mjd(s) for s in raw["start"]], rtol=0, atol=1e-9)
    np.testing.assert_allclose(real.end_mjd, [_mjd(s) for s in raw["end"]], rtol=0, atol=1e-9)
    assert not real.simulated
    p0 = real[0]
    assert p0.num == 40
    assert len(p0.darks) == 40 and p0.darks[0] == "o3sl01pcq" and p0.darks[-1] == "o3sl59kgq"
    assert real[2].darks == ()
    assert parse_exposure_mix(real[2].exposure_time) == {1800.0: 23, 1000.0: 2, 1350.0: 12}
    assert real[0].end_mjd - real[0].start_mjd == pytest.approx(60.0)


def test_to_pandas_has_the_stsci_columns(real):
    frame = real.to_pandas()
    assert set(COLUMNS) <= set(frame.columns)
    assert frame.loc[1, "start"] == pd.Timestamp("1997-04-17 01:04:37")
    assert frame.loc[1, "duration"] == pd.Timedelta("30 days 02:17:41")


@pytest.mark.parametrize(
    "date",
    [
        "1997-04-17 01:04:37",
        "1997-04-17T01:04:37",
        dt.datetime(1997, 4, 17, 1, 4, 37),
        dt.datetime(1997, 4, 17, 3, 4, 37, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        np.datetime64("1997-04-17T01:04:37"),
        pd.Timestamp("1997-04-17 01:04:37"),
        Time("1997-04-17 01:04:37", scale="utc"),
        _mjd("1997-04-17 01:04:37"),
    ],
    ids=["iso", "isot", "datetime", "aware", "datetime64", "timestamp", "Time", "mjd"],
)
def test_boundary_belongs_to_the_later_period(real, date):
    """start <= date < end: the instant where period 0 ends and 1 starts is in period 1."""
    assert real.lookup(date) == 1


def test_lookup_just_before_and_after_boundaries(real):
    second = 1 / 86400
    edge = _mjd("1997-04-17 01:04:37")
    assert real.lookup(edge - second) == 0
    assert real.lookup(edge + second) == 1
    assert real.lookup("1997-02-16 01:04:37") == 0  # first start is inside
    assert real.lookup("1997-09-26") == 6
    assert real.lookup(dt.date(1997, 6, 1)) == 2


def test_lookup_is_vectorised(real):
    dates = ["1997-02-20", "1997-05-17 03:22:18", "1997-11-03 01:33:18"]
    assert real.lookup(dates).tolist() == [0, 2, 7]
    mjd = np.array([[_mjd("1997-03-01 00:00:00")], [_mjd("1997-10-10 00:00:00")]])
    out = real.lookup(mjd)
    assert out.shape == (2, 1) and out.ravel().tolist() == [0, 7]
    many = np.linspace(real.start_mjd[0], real.end_mjd[-1], 1000, endpoint=False)
    expected = [int(np.flatnonzero((real.start_mjd <= m) & (m < real.end_mjd))[0]) for m in many]
    assert real.lookup(many).tolist() == expected


@pytest.mark.parametrize("date", ["1997-11-03 01:33:19", "1997-02-16 01:04:36", "2020-01-01"])
def test_dates_outside_every_period_raise(real, date):
    with pytest.raises(
        AnnealPeriodError, match=r"is in no anneal period; the table covers 1997-02-16"
    ):
        real.lookup(date)


def test_one_bad_date_in_an_array_raises(real):
    with pytest.raises(AnnealPeriodError, match="1998-01-01"):
        real.lookup(["1997-03-01", "1998-01-01"])


def test_gap_between_periods_is_outside():
    table = AnnealTable(
        [AnnealPeriod(1, 100.0, 110.0), AnnealPeriod(2, 120.0, 130.0)], source="gappy"
    )
    assert table.lookup([100.0, 109.999, 120.0]).tolist() == [1, 1, 2]
    with pytest.raises(AnnealPeriodError, match="gappy: date .* in no anneal period.*with gaps"):
        table.lookup(115.0)


def test_unknown_period_number(real):
    with pytest.raises(
        AnnealPeriodError, match=r"no anneal period number 99; the table holds numbers 0\.\.7"
    ):
        real[99]
    assert 3 in real and 99 not in real
    assert real.period_at("1997-07-01").number == 3


@pytest.mark.parametrize(
    ("bad", "match", "error"),
    [
        ("2017-13-45", "not a valid date", ValueError),
        ("09/26/2017", "not in an accepted form", ValueError),
        (None, "unsupported type NoneType", TypeError),
        (True, "unsupported type bool", TypeError),
        (float("nan"), "not finite", ValueError),
    ],
)
def test_bad_dates_are_refused(real, bad, match, error):
    with pytest.raises(error, match=match):
        real.lookup(bad)


def test_ecsv_round_trip_keeps_meta_and_rows(real, tmp_path):
    path = tmp_path / "periods.ecsv"
    real.write(path)
    again = AnnealTable.read(path)
    assert again.meta["simulated"] is False
    for a, b in zip(real, again, strict=True):
        assert a == b


def _write_csv(path: Path, rows: list[dict], columns=COLUMNS) -> Path:
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def _row(number, start, end, num="2", mix="2 x 1100 s", darks="", duration=""):
    return {
        "number": number,
        "start": start,
        "end": end,
        "duration": duration,
        "num": num,
        "exposure_time": mix,
        "darks": darks,
    }


def test_missing_column_is_named(tmp_path):
    path = _write_csv(
        tmp_path / "t.csv",
        [_row(1, "2000-01-01", "2000-02-01")],
        columns=[c for c in COLUMNS if c != "darks"],
    )
    with pytest.raises(AnnealTableError, match=r"t\.csv: missing column\(s\) \['darks'\]"):
        AnnealTable.read(path)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (
            [_row(1, "2000-01-01", "2000-02-01"), _row(2, "2000-01-20", "2000-03-01")],
            "periods 1 and 2 overlap",
        ),
        (
            [_row(1, "2000-01-01", "2000-02-01"), _row(1, "2000-02-01", "2000-03-01")],
            "period number 1 appears more than once",
        ),
        ([_row(1, "2000-02-01", "2000-01-01")], "period 1 ends .* before or when it starts"),
        ([_row(1, "2000-02-30", "2000-03-01")], "period 1: date '2000-02-30' is not a valid date"),
        ([_row("one", "2000-01-01", "2000-02-01")], r"row 1: number 'one' is not an integer"),
        ([_row(1, "2000-01-01", "2000-02-01", mix="2 by 1100")], "is not of the form"),
    ],
    ids=["overlap", "duplicate", "reversed", "bad-date", "bad-number", "bad-mix"],
)
def test_malformed_tables_are_refused(tmp_path, rows, match):
    path = _write_csv(tmp_path / "t.csv", rows)
    with pytest.raises(AnnealTableError, match=match):
        AnnealTable.read(path)


def test_inconsistent_counts_are_logged_not_raised(tmp_path, caplog):
    path = _write_csv(
        tmp_path / "t.csv",
        [_row(1, "2000-01-01", "2000-02-01", num="3", duration="5 days 00:00:00")],
    )
    with caplog.at_level(logging.WARNING, logger="stiscube.io.anneals"):
        table = AnnealTable.read(path)
    assert table[1].num == 3
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "duration 5 days 00:00:00 differs" in messages
    assert "num=3 but exposure_time lists 2 darks" in messages


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AnnealTable.read("/nonexistent/periods.csv")


def test_exposure_mix_round_trip():
    text = format_exposure_mix([1100.0] * 18 + [60.0] * 2 + [1350.5])
    assert text == "1 x 1350.5 s / 18 x 1100 s / 2 x 60 s"
    assert parse_exposure_mix(text) == {1350.5: 1, 1100.0: 18, 60.0: 2}
    assert parse_exposure_mix("") == {}


def test_to_mjd_agrees_with_astropy():
    dates = ["1997-02-16 01:04:37", "2017-09-26 13:04:04", "2020-02-29 23:59:59"]
    np.testing.assert_allclose(to_mjd(dates), Time(dates, scale="utc").mjd, rtol=0, atol=1e-9)


@given(
    lengths=st.lists(st.floats(min_value=0.01, max_value=90.0), min_size=1, max_size=12),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.0, 2.5]), min_size=12, max_size=12),
    offsets=st.lists(st.floats(min_value=-5.0, max_value=400.0), min_size=1, max_size=20),
)
@settings(max_examples=60, deadline=None)
def test_lookup_agrees_with_brute_force(lengths, gaps, offsets):
    """Random schedules (with gaps): lookup == the one period with start <= d < end."""
    starts, ends, t = [], [], 50000.0
    for length, gap in zip(lengths, gaps, strict=False):
        starts.append(t)
        ends.append(t + length)
        t += length + gap
    table = AnnealTable(
        [AnnealPeriod(10 + i, s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]
    )
    for offset in offsets:
        date = 50000.0 + offset
        inside = [
            10 + i for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if s <= date < e
        ]
        if inside:
            assert table.lookup(date) == inside[0]
        else:
            with pytest.raises(AnnealPeriodError):
                table.lookup(date)


def test_exposure_mix_items_on_separate_lines(tmp_path):
    """The STScI page puts each item of an exposure-mix cell on its own line (issue 9.7)."""
    assert parse_exposure_mix("23 x 1800 s\n2 x 1000 s\n12 x 1350 s") == {
        1800.0: 23,
        1000.0: 2,
        1350.0: 12,
    }
    assert parse_exposure_mix("4 x 1000 s\r\n\r\n24 x 1350 s\n") == {1000.0: 4, 1350.0: 24}
    assert parse_exposure_mix("3 x 1000 s<br>18 x 1350 s") == {1000.0: 3, 1350.0: 18}
    with pytest.raises(ValueError, match=r"item 'two x 60' is not of the form"):
        parse_exposure_mix("23 x 1800 s\ntwo x 60")
    # a table whose cell spans lines (quoted in the CSV) reads like the one-line form
    path = tmp_path / "t.csv"
    path.write_text(
        "number,start,end,duration,num,exposure_time,darks\n"
        '3,1997-06-19 12:23:09,1997-07-21 05:48:04,,28,"4 x 1000 s\n24 x 1350 s",\n'
    )
    table = AnnealTable.read(path)
    assert parse_exposure_mix(table[3].exposure_time) == {1000.0: 4, 1350.0: 24}
