"""PixelDB: ingest, the seed-compatible queries, and bad input (checked against numpy)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stiscube import CubeQueryError, PeriodExistsError, PixelDB, SeedCSVError
from stiscube.datasets._synthcube import random_properties
from stiscube.io.anneals import AnnealTable
from stiscube.io.seedcsv import SEED_COLUMNS, to_seed_table, write_seed_csv
from stiscube.schema import PROPERTIES
from stores import ReadOnlyStoreError, SchemaMismatchError
from stores.common.testing import tree_digest

DATA = Path(__file__).resolve().parents[2] / "data"
SHAPE = (40, 30)
NUMBERS = [100, 101, 102, 103, 104]
START = np.datetime64("2017-01-05T03:00:00", "s")


def period_table(numbers=NUMBERS, days=30) -> AnnealTable:
    starts = [START + np.timedelta64(days * 86400 * i, "s") for i in range(len(numbers))]
    ends = [s + np.timedelta64(days * 86400, "s") for s in starts]
    frame = pd.DataFrame(
        {
            "number": [str(n) for n in numbers],
            "start": [str(s).replace("T", " ") for s in starts],
            "end": [str(e).replace("T", " ") for e in ends],
            "duration": [f"{days} days 00:00:00"] * len(numbers),
            "num": ["2"] * len(numbers),
            "exposure_time": ["2 x 1100 s"] * len(numbers),
            "darks": [f"o{n}aaaq, o{n}bbbq" for n in numbers],
        }
    )
    return AnnealTable.from_dataframe(frame, meta={"simulated": True})


@pytest.fixture
def truth():
    """The property frames ingested, by period number (the independent reference)."""
    return {n: random_properties(SHAPE, seed=n) for n in NUMBERS[:4]}


@pytest.fixture
def db(tmp_path, truth):
    db = PixelDB.create(
        tmp_path / "db", periods=period_table(), shape=SHAPE, chunks={"row": 16, "col": 16}
    )
    for n in (102, 100, 103, 101):  # any order
        db.ingest_properties(truth[n], n)
    return db


def _expected_row(truth, number, r, c):
    return [number, r, c] + [float(truth[number][p].values[r, c]) for p in PROPERTIES]


def test_query_pixel_by_number_and_date(db, truth):
    got = db.query_pixel(pixel_row=5, pixel_col=20, anneal_num=101)
    assert list(got.columns) == ["AnnealNumber", "RowNum", "ColumnNum", *SEED_COLUMNS[2:]]
    assert got.values.tolist() == [_expected_row(truth, 101, 5, 20)]
    by_date = db.query_pixel(pixel_row=5, pixel_col=20, date="2017-03-01 12:00:00")
    pd.testing.assert_frame_equal(
        by_date, db.query_pixel(5, 20, anneal_num=101)
    )  # 2017-03-01 lies in the second period (Feb 4 - Mar 6)


def test_period_boundaries(db):
    table = period_table()
    start_101 = table[101].start
    assert db.query_anneal(date=start_101)["AnnealNumber"].item() == 101  # start is inside
    assert db.query_anneal(date=table[100].end)["AnnealNumber"].item() == 101  # end is not
    just_before = start_101 - np.timedelta64(1, "us")
    assert db.query_anneal(date=just_before)["AnnealNumber"].item() == 100
    for form in (str(start_101).replace("T", " "), pd.Timestamp(start_101).to_pydatetime()):
        assert db.query_anneal(date=form)["AnnealNumber"].item() == 101
    from astropy.time import Time

    assert db.query_anneal(date=Time(str(start_101), scale="utc"))["AnnealNumber"].item() == 101
    assert db.query_anneal(date=Time(str(start_101)).mjd + 1e-6)["AnnealNumber"].item() == 101


def test_query_region_inclusive_and_ordered(db, truth):
    got = db.query_pixel_region(pixel_row_range=[1, 5], pixel_col_range=[2, 7], anneal_num=103)
    assert len(got) == 5 * 6
    expected = [_expected_row(truth, 103, r, c) for r in range(1, 6) for c in range(2, 8)]
    assert got.values.tolist() == expected
    assert got["NaN_Count"].dtype == np.int64


def test_query_anneal_and_darks(db):
    got = db.query_anneal(anneal_num=102)
    table = period_table()
    assert got.to_dict("records") == [
        {
            "AnnealNumber": 102,
            "StartDate": pd.Timestamp(table[102].start),
            "EndDate": pd.Timestamp(table[102].end),
            "NumberOfDarks": 2,
        }
    ]
    darks = db.query_anneal_darks(anneal_num=102)
    assert darks.to_dict("list") == {"Darks": ["o102aaaq", "o102bbbq"], "AnnealNumber": [102, 102]}


def test_history_and_cube(db, truth):
    hist = db.history(7, 9)
    assert hist["anneal"].values.tolist() == [100, 101, 102, 103]
    for p in PROPERTIES:
        np.testing.assert_array_equal(
            hist[p].values, [truth[n][p].values[7, 9] for n in NUMBERS[:4]]
        )
    cube = db.cube
    assert cube.dims == ("anneal", "row", "col", "property")
    assert cube["property"].values.tolist() == list(PROPERTIES)
    assert "anneal_start" in cube.coords and "anneal_end" in cube.coords
    np.testing.assert_array_equal(
        cube.sel(anneal=102, property="sci_mean").values, truth[102]["sci_mean"].values
    )


def test_replace_period(db, truth):
    new = random_properties(SHAPE, seed=999)
    before = tree_digest(db.location.url)
    with pytest.raises(PeriodExistsError, match="period 101 is already in .*overwrite=True"):
        db.ingest_properties(new, 101)
    assert tree_digest(db.location.url) == before
    db.ingest_properties(new, 101, overwrite=True)
    reopened = PixelDB(db.location.url, mode="r")
    np.testing.assert_array_equal(
        reopened.dataset["readnoise"].sel(anneal=101).values, new["readnoise"].values
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    r=st.integers(0, SHAPE[0] - 1),
    c=st.integers(0, SHAPE[1] - 1),
    k=st.integers(0, 3),
    offset=st.floats(0, 0.999999),
)
def test_queries_match_numpy_indexing(db, truth, r, c, k, offset):
    number = NUMBERS[k]
    period = period_table()[number]
    date = period.start_mjd + offset * (period.end_mjd - period.start_mjd)
    assert db.query_pixel(r, c, date=date).values.tolist() == [_expected_row(truth, number, r, c)]
    r1 = min(r + 3, SHAPE[0] - 1)
    got = db.query_pixel_region([r, r1], [c, c], anneal_num=number)
    assert got["Sci_Mean"].tolist() == truth[number]["sci_mean"].values[r : r1 + 1, c].tolist()


@pytest.mark.slow
def test_seed_csv_with_real_snippet_rows(tmp_path):
    """Full 1024x1024 CSV, first rows the 10 real ones of the snippet, loads as period 200."""
    snippet = pd.read_csv(files("stiscube") / "data" / "anneal_200.csv")  # the shipped copy
    synth = random_properties((1024, 1024), seed=200)
    csv_dir = tmp_path / "input"
    csv_dir.mkdir()
    table = to_seed_table(synth)
    table.iloc[: len(snippet)] = snippet.to_numpy()
    table.to_csv(csv_dir / "anneal_200.csv", index=False)  # full precision (repr)
    db = PixelDB.create(tmp_path / "db", shape=(1024, 1024))
    db.insert_anneal(200, csv_loc=csv_dir, start="2017-09-26", end="2017-10-25")
    got = db.query_pixel(0, 5, anneal_num=200)
    assert got["Sci_Mean"].item() == 1170.380859375
    assert got["Readnoise"].item() == pytest.approx(14.061666488647461, rel=1e-7)
    assert db.query_pixel(50, 50, date="2017-09-26 13:04:04")["AnnealNumber"].item() == 200
    assert db.dataset["unit_system"].sel(anneal=200).item() == "counts"
    region = db.query_pixel_region([0, 0], [0, 9], anneal_num=200)
    np.testing.assert_allclose(region["Sci_Mean"], snippet["Sci_Mean"], rtol=1e-7)
    np.testing.assert_array_equal(region["NaN_Count"], snippet["NaN_Count"].astype(int))
    np.testing.assert_allclose(region["Stability"], snippet["Stability"], rtol=1e-7)


# -- bad input: specific errors, store unchanged ------------------------------------------
def _csv(tmp_path, name="anneal_104.csv", mutate=None):
    frame = pd.read_csv(write_seed_csv(random_properties(SHAPE, seed=104), tmp_path / name))
    if mutate is not None:
        frame = mutate(frame)
    frame.to_csv(tmp_path / name, index=False)
    return tmp_path


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda f: f.drop(columns="Readnoise"), r"missing \['Readnoise'\]"),
        (lambda f: f.assign(Extra=1), r"extra \['Extra'\]"),
        (lambda f: f.iloc[:-1], "1199 pixel rows, expected 1200"),
        (
            lambda f: f.assign(
                Row=f["Row"].where(f.index != 3, 0).where(f.index != 3, f["Row"]),
                Column=f["Column"].where(f.index != 1, 0),
            ),
            "duplicate pixels",
        ),
        (lambda f: f.assign(Row=f["Row"].where(f.index != 5, 40)), "outside the frame"),
        (
            lambda f: f.assign(Sci_Mean=f["Sci_Mean"].astype(str).where(f.index != 2, "x")),
            "non-numeric",
        ),
        (  # issue 14.13: a Row of 2**70 gave a bare OverflowError
            lambda f: f.assign(Row=f["Row"].astype(object).where(f.index != 4, 2**70)),
            r"anneal_104\.csv: non-numeric, out-of-range or malformed values",
        ),
    ],
    ids=[
        "missing-column", "extra-column", "row-count", "duplicate", "outside", "non-numeric",
        "row-2**70",
    ],
)
def test_bad_csv(db, tmp_path, mutate, match):
    csv_dir = _csv(tmp_path, mutate=mutate)
    before = tree_digest(db.location.url)
    with pytest.raises(SeedCSVError, match=match):
        db.insert_anneal(104, csv_loc=csv_dir)
    assert tree_digest(db.location.url) == before


def test_bad_queries_and_ingests(db, tmp_path, truth):
    before = tree_digest(db.location.url)
    with pytest.raises(CubeQueryError, match="pixel_row=40 is outside the frame"):
        db.query_pixel(40, 0, anneal_num=100)
    with pytest.raises(CubeQueryError, match="pixel_col_range=-1 is outside the frame"):
        db.query_pixel_region([0, 1], [-1, 3], anneal_num=100)
    with pytest.raises(CubeQueryError, match="before the first period held"):
        db.query_pixel(0, 0, date="2016-12-31")
    with pytest.raises(CubeQueryError, match="after the last period held"):
        db.query_anneal(date="2017-12-31 00:00:00")
    with pytest.raises(CubeQueryError, match="anneal period 7 is not in the cube"):
        db.query_anneal_darks(anneal_num=7)
    with pytest.raises(ValueError, match="give exactly one of date or anneal_num"):
        db.query_pixel(0, 0)
    with pytest.raises(PeriodExistsError, match="already in"):
        db.insert_anneal(100, csv_loc=_csv(tmp_path, "anneal_100.csv"))
    with pytest.raises(CubeQueryError, match="dates of anneal period 555 are unknown"):
        db.insert_anneal(555, csv_loc=tmp_path)
    with pytest.raises(SeedCSVError, match="no such CSV file"):
        db.insert_anneal(104, csv_loc=tmp_path / "nowhere")
    with pytest.raises(CubeQueryError, match="overlaps period 100"):
        db.ingest_properties(truth[100], 900, start="2017-01-10", end="2017-01-20")
    with pytest.raises(SchemaMismatchError, match="has shape"):
        db.ingest_properties(random_properties((10, 10)), 104)
    assert tree_digest(db.location.url) == before
    read_only = PixelDB(db.location.url, mode="r")
    with pytest.raises(ReadOnlyStoreError):
        read_only.ingest_properties(truth[100], 104)
    assert tree_digest(db.location.url) == before


def test_history_index_is_used_only_while_current(db, truth):
    import xarray as xr

    expected = db.history(7, 9)  # from the cube
    assert not db.history_index_current
    db.update_history_index(rebuild=True)
    assert db.history_index_current and db.info()["history_index"]
    xr.testing.assert_identical(db.history(7, 9), expected)
    values = db.history_values(7, 9)
    for p in PROPERTIES:
        np.testing.assert_array_equal(values[p], expected[p].values)
    for row, col in [(0, 0), (39, 29), (17, 3)]:
        got = db.history(row, col)
        for p in PROPERTIES:
            np.testing.assert_array_equal(
                got[p].values, [truth[n][p].values[row, col] for n in NUMBERS[:4]]
            )
    # a replaced period makes the index stale: answers come from the cube again
    new = random_properties(SHAPE, seed=4242)
    db.ingest_properties(new, 101, overwrite=True)
    assert not db.history_index_current
    assert db.history(7, 9)["sci_mean"].sel(anneal=101).item() == new["sci_mean"].values[7, 9]
    other = PixelDB(db.location.url, mode="r")
    assert not other.history_index_current
    db.update_history_index(rebuild=True)
    other.refresh()
    assert other.history_index_current
    xr.testing.assert_identical(
        other.history(7, 9), db.store.read_window(db.anneal_numbers, row=7, col=9)
    )
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        other.update_history_index(rebuild=True)


# -- issue 14: bad input refused before anything is written, checks under the lock ---------
def _write_seed_csv(tmp_path, number, shape=SHAPE):
    write_seed_csv(random_properties(shape, seed=number), tmp_path / f"anneal_{number}.csv")
    return tmp_path


@pytest.mark.parametrize("number", [2**63, 2**64 + 5, -1])
def test_anneal_numbers_outside_int64_are_refused_before_writing(db, tmp_path, truth, number):
    # reproducer: stiscube ingest o.db --csv DIR --anneal 9223372036854775808 --start ... --end
    before = tree_digest(db.location.url)
    rule = r"anneal_num must be an integer in \[0, 9223372036854775807\], got"
    with pytest.raises(ValueError, match=rule):
        db.ingest_properties(truth[100], number, start="2031-01-01", end="2031-02-01")
    with pytest.raises(ValueError, match=r"anneal_num must be an integer in \[0, 92233720"):
        db.insert_anneal(number, csv_loc=tmp_path, start="2031-01-01", end="2031-02-01")
    assert tree_digest(db.location.url) == before
    assert PixelDB(db.location.url, mode="r").anneal_numbers == [100, 101, 102, 103]


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        ("9998-01-01", "9999-01-01", "date 9998-01-01T00:00:00.000000 is outside the supported"),
        ("0001-01-01", "0001-02-01", "date 0001-01-01T00:00:00.000000 is outside the supported"),
        (3e5, 3e5 + 30, r"MJD 300000.0 is outside the supported range -66164 to 147338"),
        (-7e4, -6.9e4, r"MJD -70000.0 is outside the supported range"),
        ("2262-04-12", "2262-05-01", "date 2262-04-12T00:00:00.000000 is outside the supported"),
    ],
)
def test_dates_outside_datetime64ns_are_refused_not_wrapped(db, tmp_path, truth, start, end,
                                                            match):
    before = tree_digest(db.location.url)
    with pytest.raises(ValueError, match=match):
        db.ingest_properties(truth[100], 300, start=start, end=end)
    _write_seed_csv(tmp_path, 301)
    with pytest.raises(ValueError, match=match):
        db.insert_anneal(301, csv_loc=tmp_path, start=start, end=end)
    assert tree_digest(db.location.url) == before


def test_dates_as_time_and_datetime_outside_the_range_are_refused(db, truth):
    import datetime as dt

    from astropy.time import Time
    from erfa import ErfaWarning

    before = tree_digest(db.location.url)
    with pytest.raises(ValueError, match="is outside the supported range"):
        db.ingest_properties(truth[100], 300, start=dt.datetime(9998, 1, 1),
                             end=dt.datetime(9999, 1, 1))
    # astropy's own Time.datetime64 wraps round here (9999 -> 1815): refused, not wrapped
    with pytest.warns(ErfaWarning, match="dubious year"):  # astropy's own warning
        late = Time(["2300-01-01", "2300-02-01"], scale="utc")
    with pytest.raises(ValueError, match="2300-01-01 00:00:00.000 is outside the supported"):
        db.ingest_properties(truth[100], 300, start=late[0], end=late[1])
    assert tree_digest(db.location.url) == before
    # the edges of the range itself are accepted, and stored exactly
    db.ingest_properties(truth[100], 300, start="1677-09-22", end="1677-09-23")
    got = PixelDB(db.location.url, mode="r").query_anneal(anneal_num=300)
    assert got["StartDate"].item() == pd.Timestamp("1677-09-22")


def test_insert_anneal_on_a_read_only_db_raises_the_read_only_error_first(db, tmp_path):
    read_only = PixelDB(db.location.url, mode="r")
    before = tree_digest(db.location.url)
    # no dates known for period 999 and no CSV: the read-only error still comes first
    with pytest.raises(ReadOnlyStoreError, match="was opened read-only"):
        read_only.insert_anneal(999, csv_loc=tmp_path / "nowhere")
    with pytest.raises(ReadOnlyStoreError, match="was opened read-only"):
        read_only.ingest_properties(random_properties(SHAPE, seed=1), 999)
    assert tree_digest(db.location.url) == before


def test_create_never_overwrites_an_existing_period_table(tmp_path):
    from stores import StoreExistsError

    target = tmp_path / "db"
    target.mkdir()
    table = tmp_path / "mine.ecsv"
    period_table(numbers=[1, 2]).write(table)
    (target / "periods.ecsv").write_bytes(table.read_bytes())
    before = tree_digest(target)
    with pytest.raises(StoreExistsError, match="already holds a period table"):
        PixelDB.create(target, periods=period_table(), shape=SHAPE)
    with pytest.raises(StoreExistsError, match="already holds a period table"):
        PixelDB.create(target, shape=SHAPE)
    assert tree_digest(target) == before
    assert list(AnnealTable.read(target / "periods.ecsv").numbers) == [1, 2]


def _ingest_overlapping(path, number, start, end, barrier, results):
    from stiscube import PixelDB as DB
    from stiscube.datasets._synthcube import random_properties as props

    db = DB(path, mode="r+", lock_timeout=30.0)
    data = props(SHAPE, seed=number)
    barrier.wait()
    try:
        db.ingest_properties(data, number, start=start, end=end)
        results.put((number, "ok"))
    except CubeQueryError as exc:
        results.put((number, str(exc)))


@pytest.mark.parametrize("trial", range(3))
def test_overlap_check_runs_under_the_writer_lock(tmp_path, trial):
    import multiprocessing as mp

    path = tmp_path / "db"
    PixelDB.create(path, shape=SHAPE)
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    jobs = [
        ctx.Process(target=_ingest_overlapping,
                    args=(str(path), 1, "2031-01-01", "2031-02-01", barrier, results)),
        ctx.Process(target=_ingest_overlapping,
                    args=(str(path), 2, "2031-01-15", "2031-03-01", barrier, results)),
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    outcomes = dict(results.get(timeout=5) for _ in jobs)
    held = PixelDB(path, mode="r").anneal_numbers
    assert len(held) == 1, (outcomes, held)  # never both
    loser = ({1, 2} - set(held)).pop()
    assert f"overlaps period {held[0]}" in outcomes[loser]
    assert outcomes[held[0]] == "ok"


def test_same_inputs_recognises_a_period_of_multi_imset_files(tmp_path):
    """Resume (issue 14.11) with files holding two imsets each: one fingerprint per file."""
    from stiscube.datasets.simulate import DarkPhysics, simulate_darks

    sim = simulate_darks(
        tmp_path / "sim", n_periods=1, frames_per_period=6, shape=(32, 32), seed=3,
        physics=DarkPhysics(imsets_per_file=2),
    )
    (number, files), = sim.files.items()
    assert len(files) == 3
    db = PixelDB.create(tmp_path / "db", periods=sim.periods, shape=sim.shape)
    db.ingest_darks(files, number)
    assert len(db.query_anneal_darks(anneal_num=number)) == 6  # a frame per imset
    assert db.same_inputs(number, files)
    assert db.same_inputs(number, list(reversed(files)))
    assert not db.same_inputs(number, files[:2])  # a file missing
    assert not db.same_inputs(number, [*files, files[0]])  # a file given twice


def test_a_damaged_period_table_names_its_file(tmp_path):
    """Issue 14.13: a YAML tag in periods.ecsv gave astropy's error without the file."""
    from stiscube import AnnealTableError

    periods = AnnealTable.read(DATA / "anneal_periods_1997.csv")
    PixelDB.create(tmp_path / "db", periods=periods, shape=(8, 8))
    path = tmp_path / "db" / "periods.ecsv"
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("# datatype:"))
    lines.insert(at, "# meta: !!python/name:os.system ''")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnealTableError, match=rf"anneal table {path}: not a readable ECSV"):
        PixelDB(tmp_path / "db")
