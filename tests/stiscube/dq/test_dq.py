"""DQ registry and DQ reference arrays, checked against plain numpy written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from astropy.table import Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stiscube import CubeQueryError, PixelDB, UnitMismatchError
from stiscube.datasets._synthcube import random_properties
from stiscube.dq import (
    DQRules,
    dq_array,
    flagged_pixels_table,
    hot_pixel_counts,
    write_dq_fits,
    write_flagged_table,
)
from stiscube.dq._kernels import clipped_threshold
from stiscube.dq.flags import (
    STIS_DQ,
    cf_flag_attrs,
    decode_dq,
    decode_dq_names,
    dq_flag,
    dq_mask,
)
from stiscube.schema import PROPERTIES

SHAPE = (64, 48)
RATE_PERIODS = [3, 5, 6, 7, 9]  # gaps in the numbering on purpose
COUNTS_PERIOD = 12
START = np.datetime64("2019-04-01T00:00:00", "s")
DAY = np.timedelta64(86400, "s")


def _dates(i: int) -> tuple[np.datetime64, np.datetime64]:
    return START + 30 * i * DAY, START + 30 * (i + 1) * DAY


def _frames(number: int) -> xr.Dataset:
    ds = random_properties(SHAPE, seed=number, hot_fraction=0.03)
    rng = np.random.default_rng(1000 + number)
    sci = ds["sci_mean"].values
    # a few NaN pixels (never flagged, excluded from the clipped statistics)
    sci[rng.integers(0, SHAPE[0], 5), rng.integers(0, SHAPE[1], 5)] = np.nan
    # pixels that stay hot / unstable in every period (for the persistence rule)
    sci[10, 10:14] = [0.5, 2.0, 0.02, 0.3]
    sci[30, 30] = np.float32(0.1)  # float32(0.1) > 0.1 in double, == 0.1 in float32
    ds["stability"].values[20, 5:8] = [7.0, 2.5, 9.0]
    ds["stability"].values[10, 11] = 6.0  # hot and unstable
    ds["stability"].values[rng.integers(0, SHAPE[0], 3), rng.integers(0, SHAPE[1], 3)] = np.nan
    return ds


@pytest.fixture(scope="module")
def truth():
    """Property frames by period number: the independent reference."""
    frames = {n: _frames(n) for n in RATE_PERIODS}
    counts = _frames(COUNTS_PERIOD)
    counts["sci_mean"] = counts["sci_mean"] * 1100.0  # counts per frame, as the seed CSV
    frames[COUNTS_PERIOD] = counts
    return frames


@pytest.fixture(scope="module")
def db(tmp_path_factory, truth):
    db = PixelDB.create(
        tmp_path_factory.mktemp("dq") / "db", shape=SHAPE, chunks={"row": 32, "col": 32}
    )
    order = [7, 3, 9, 5, 6]  # ingested in any order
    for n in order:
        start, end = _dates(RATE_PERIODS.index(n))
        db.ingest_properties(truth[n], n, start=start, end=end)
    start, end = _dates(len(RATE_PERIODS))
    db.ingest_properties(
        truth[COUNTS_PERIOD], COUNTS_PERIOD, start=start, end=end, unit_system="counts"
    )
    return db


@pytest.fixture(scope="module")
def cube(db):
    return db.dataset


def _arr(truth, number, name):
    return np.asarray(truth[number][name].values, dtype=np.float64)


def np_clipped_median_std(frame, sigma=3.0, maxiters=40):
    """Plain-numpy sigma clipping about the median (the astropy/refstis algorithm)."""
    x = frame[np.isfinite(frame)].astype(np.float64)
    for _ in range(maxiters if maxiters is not None else 10**6):
        med, std = np.median(x), np.std(x)
        keep = (x >= med - sigma * std) & (x <= med + sigma * std)
        if keep.all():
            break
        x = x[keep]
    return np.median(x), np.std(x)


def np_hot(frame, *, level=None, nsigma=None, combine="or", sigma=3.0, maxiters=40):
    tests = []
    with np.errstate(invalid="ignore"):
        if level is not None:
            tests.append(frame > level)
        if nsigma is not None:
            med, std = np_clipped_median_std(frame, sigma, maxiters)
            tests.append(frame > med + nsigma * std)
    if len(tests) == 1:
        return tests[0]
    return np.logical_or(*tests) if combine == "or" else np.logical_and(*tests)


# -- the per-frame clip vs astropy ----------------------------------------------------------
def test_clipped_threshold_per_frame_matches_astropy_axis():
    from astropy.stats import sigma_clipped_stats

    frames = np.stack(
        [random_properties((96, 80), seed=s, hot_fraction=0.03)["sci_mean"].values for s in (1, 2)]
    )
    frames[1, :5, :7] = np.nan
    frames = np.concatenate([frames, np.full((1, 96, 80), np.nan, np.float32)])
    median, std, threshold = clipped_threshold(frames, 5.0, axis=(1, 2))
    assert median.shape == std.shape == threshold.shape == (3,)
    assert np.isnan([median[2], std[2], threshold[2]]).all()  # an all-NaN frame
    data = frames[:2].astype(np.float64)
    _, med_a, std_a = sigma_clipped_stats(
        data, mask=~np.isfinite(data), sigma=3.0, maxiters=40, axis=(1, 2), stdfunc="std"
    )
    np.testing.assert_allclose(median[:2], np.ma.filled(med_a, np.nan), rtol=1e-9)
    np.testing.assert_allclose(std[:2], np.ma.filled(std_a, np.nan), rtol=1e-9)
    np.testing.assert_allclose(threshold[:2], median[:2] + 5.0 * std[:2], rtol=1e-15)
    # the frame axes may be anywhere
    moved = clipped_threshold(np.moveaxis(frames, 0, -1), 5.0, axis=(0, 1))
    np.testing.assert_array_equal(moved[0], median)


# -- the registry ------------------------------------------------------------------------
def test_registry_values_and_decode():
    bits = [flag.bit for flag in STIS_DQ]
    assert bits == [2**i for i in range(15)]
    assert dq_flag(16).name == "hot_pixel"
    assert dq_flag("bad_detector_pixel").bit == 4
    assert decode_dq(0) == []
    assert decode_dq(20) == ["bad_detector_pixel", "hot_pixel"]
    assert decode_dq(16 | 32768) == ["hot_pixel", "unknown_bits_32768"]
    assert dq_mask(["hot_pixel", 4, 512]) == 532
    values = np.arange(0, 2**15)
    names = {flag.bit: flag.name for flag in STIS_DQ}
    for v in values[::97]:  # independent decomposition into powers of two
        expected = [names[1 << i] for i in range(15) if (int(v) >> i) & 1]
        assert decode_dq(int(v)) == expected


def test_decode_names_vectorised_and_cf_attrs():
    rng = np.random.default_rng(5)
    values = rng.choice([0, 16, 4, 20, 512, 16 | 512], size=(30, 20)).astype(np.uint16)
    got = decode_dq_names(values)
    assert got.shape == values.shape
    for v, text in zip(values.ravel(), got.ravel(), strict=True):
        assert text == ",".join(decode_dq(int(v)))
    attrs = cf_flag_attrs()
    masks = attrs["flag_masks"]
    meanings = attrs["flag_meanings"].split()
    assert masks.dtype == np.uint16 and len(masks) == len(meanings) == 15
    # CF decoding of bit fields: meaning i holds where (v & mask_i) == mask_i
    for v in (0, 16, 20, 532):
        cf = [m for m, k in zip(meanings, masks, strict=True) if (v & k) == k]
        assert cf == decode_dq(v)
    sub = cf_flag_attrs([16, "bad_detector_pixel"])
    assert sub["flag_masks"].tolist() == [4, 16]
    assert sub["flag_meanings"] == "bad_detector_pixel hot_pixel"


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: dq_flag(3), ValueError, "3 is not a single STIS DQ bit"),
        (lambda: dq_flag("hot"), ValueError, "'hot' is not a STIS DQ flag name"),
        (lambda: dq_flag(1.5), TypeError, "must be an int or a flag name"),
        (lambda: decode_dq(-1), ValueError, "16-bit DQ value"),
        (lambda: decode_dq(70000), ValueError, "16-bit DQ value"),
        (lambda: decode_dq(True), TypeError, "integer DQ value"),
        (lambda: decode_dq_names(np.array([1.0])), TypeError, "integer array"),
    ],
)
def test_registry_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -- rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"hot_nsigma": 0}, ValueError, "hot_nsigma must be > 0"),
        ({"hot_nsigma": -2.0}, ValueError, "hot_nsigma must be > 0"),
        ({"hot_level": float("nan")}, ValueError, "hot_level must be finite"),
        ({"hot_level": -1}, ValueError, "hot_level must be > 0, got -1"),
        ({"hot_level": 0.0}, ValueError, "hot_level must be > 0"),
        ({"unstable_level": -2.0}, ValueError, "unstable_level must be > 0"),
        ({"unstable_level": float("nan")}, ValueError, "unstable_level must be finite"),
        ({"hot_level": float("-inf")}, ValueError, "hot_level must be finite"),
        (
            {"unstable_level": 3.0, "unstable_bit": 16},
            ValueError,
            "hot_bit and unstable_bit must differ",
        ),
        ({"hot_level": "0.1"}, TypeError, "hot_level must be a number"),
        ({"unstable_level": True}, TypeError, "unstable_level must be a number"),
        ({"hot_combine": "xor"}, ValueError, "hot_combine must be one of"),
        ({"hot_combine": "and"}, ValueError, "hot_combine='and' needs both"),
        ({"clip_sigma": 0.0}, ValueError, "clip_sigma must be > 0"),
        ({"clip_sigma": None}, TypeError, "clip_sigma must be a number, got None"),
        ({"clip_maxiters": 0}, ValueError, "clip_maxiters must be an integer >= 1 or None, got 0"),
        ({"clip_maxiters": 2.5}, TypeError, "clip_maxiters must be an integer >= 1 or None"),
        ({"persist_k": 2}, ValueError, "persist_k and persist_m go together"),
        ({"persist_k": 4, "persist_m": 3}, ValueError, "persist_k must be <= persist_m"),
        ({"persist_k": 0, "persist_m": 3}, ValueError, "persist_k must be an integer >= 1 or None"),
        ({"partial_window": "pad"}, ValueError, "partial_window must be one of"),
        ({"hot_bit": 3}, ValueError, "hot_bit: 3 is not a single STIS DQ bit"),
        ({"unstable_bit": "flicker"}, ValueError, "unstable_bit: 'flicker' is not"),
        ({"hot_level": None, "hot_nsigma": None}, ValueError, "the rules flag nothing"),
    ],
)
def test_bad_rules(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        DQRules(**kwargs)


def test_rules_default_level():
    # the default: 0.1 e-/s alone, the level at which the STIS superdarks set DQ 16
    assert DQRules().hot_level == 0.1 and DQRules().hot_nsigma is None
    assert DQRules(unstable_level=3.0).hot_nsigma is None
    assert DQRules(hot_level=None).hot_nsigma == 5.0  # the relative rule, refstis's 5 sigma
    assert DQRules(hot_level=None, unstable_level=3.0).hot_nsigma == 5.0
    assert DQRules(hot_level=0.1, hot_nsigma=4).hot_nsigma == 4.0
    with pytest.raises(TypeError, match="hot_nsigma must be a number or None, got 'five'"):
        DQRules(hot_nsigma="five")


def test_rules_normalised_and_round_trip():
    rules = DQRules(hot_level=1, hot_nsigma=4, unstable_bit="bad_reference_pixel")
    assert rules.hot_level == 1.0 and isinstance(rules.hot_level, float)
    assert rules.unstable_bit == 512 and rules.hot_bit == 16
    assert DQRules.from_dict(json.loads(json.dumps(rules.to_dict()))) == rules
    with pytest.raises(ValueError, match=r"unknown DQ rule parameters \['sigma'\]"):
        DQRules.from_dict({"sigma": 3})
    with pytest.raises(AttributeError):
        rules.hot_level = 2.0  # frozen


# -- DQ arrays vs numpy --------------------------------------------------------------------
def test_level_rule(cube, truth):
    dq = dq_array(cube, rules=DQRules(hot_level=0.1, hot_nsigma=None), anneal_num=6)
    expected = np.where(_arr(truth, 6, "sci_mean") > 0.1, 16, 0)
    assert dq.dtype == np.uint16 and dq.dims == ("row", "col")
    np.testing.assert_array_equal(dq.values, expected)
    assert dq.values[30, 30] == 16  # the level is compared in double precision
    assert 0 < dq.attrs["n_hot"] == np.count_nonzero(expected) < dq.size
    assert np.isnan(dq.attrs["hot_sigma_threshold"])


def test_nsigma_rule_matches_numpy_sigma_clip(cube, truth):
    sci = _arr(truth, 5, "sci_mean")
    assert np.isnan(sci).any()
    for nsigma, clip, iters in [(5.0, 3.0, 40), (3.0, 2.5, 3), (8.0, 3.0, None)]:
        rules = DQRules(hot_nsigma=nsigma, clip_sigma=clip, clip_maxiters=iters)
        dq = dq_array(cube, rules=rules, anneal_num=5)
        med, std = np_clipped_median_std(sci, clip, iters)
        np.testing.assert_array_equal(dq.values, np.where(sci > med + nsigma * std, 16, 0))
        assert dq.attrs["hot_clip_median"] == pytest.approx(med, rel=1e-12)
        assert dq.attrs["hot_clip_std"] == pytest.approx(std, rel=1e-12)
        assert dq.attrs["hot_sigma_threshold"] == pytest.approx(med + nsigma * std, rel=1e-12)
    # the relative rule flags pixels the 0.1 e-/s level does not (and vice versa)
    assert (np_hot(sci, nsigma=5) & ~np_hot(sci, level=0.1)).any()


@pytest.mark.parametrize("source", ["dataset", "pixeldb"])
@pytest.mark.parametrize("combine", ["or", "and"])
def test_combined_hot_and_unstable(db, cube, truth, combine, source):
    rules = DQRules(
        hot_level=0.1, hot_nsigma=5, hot_combine=combine, unstable_level=2.0, unstable_bit=512
    )
    dq = dq_array(cube if source == "dataset" else db, rules=rules, anneal_num=7)
    sci, stab = _arr(truth, 7, "sci_mean"), _arr(truth, 7, "stability")
    hot = np_hot(sci, level=0.1, nsigma=5, combine=combine)
    with np.errstate(invalid="ignore"):
        unstable = stab > 2.0
    expected = (16 * hot) | (512 * unstable)
    np.testing.assert_array_equal(dq.values, expected)
    assert dq.values[10, 11] == 16 | 512  # both bits on one pixel
    assert dq.attrs["n_hot"] == hot.sum() and dq.attrs["n_unstable"] == unstable.sum()
    assert dq.attrs["n_flagged"] == np.count_nonzero(expected)


@pytest.mark.parametrize("source", ["dataset", "pixeldb"])
def test_persistence_k_of_m(db, cube, truth, source):
    rules = DQRules(hot_level=0.1, hot_nsigma=5, unstable_level=2.0, persist_k=2, persist_m=3)
    dq = dq_array(cube if source == "dataset" else db, rules=rules, anneal_num=7)
    window = [5, 6, 7]  # the last three periods held up to 7 (4 is not held)
    assert dq.attrs["window_anneals"].tolist() == window
    with np.errstate(invalid="ignore"):
        hot_n = sum(np_hot(_arr(truth, n, "sci_mean"), level=0.1, nsigma=5) for n in window)
        unst_n = sum(_arr(truth, n, "stability") > 2.0 for n in window)
    expected = 16 * (hot_n >= 2) | 4 * (unst_n >= 2)
    np.testing.assert_array_equal(dq.values, expected)
    # persistence differs from the single-period rule on this data
    one_period = DQRules(hot_level=0.1, hot_nsigma=5, unstable_level=2.0)
    single = dq_array(cube, rules=one_period, anneal_num=7)
    assert (single.values != dq.values).any()
    assert dq.values[10, 10] & 16 and dq.values[20, 5] & 4  # always bad -> flagged
    thresholds = [
        np.add(*np.multiply(np_clipped_median_std(_arr(truth, n, "sci_mean")), [1, 5]))
        for n in window
    ]
    np.testing.assert_allclose(dq.attrs["hot_sigma_thresholds"], thresholds, rtol=1e-12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    number=st.sampled_from(RATE_PERIODS),
    m=st.integers(1, 5),
    k_frac=st.floats(0, 1),
    level=st.floats(0.005, 2.0),
    unstable=st.floats(0.5, 8.0),
)
def test_persistence_property(cube, truth, number, m, k_frac, level, unstable):
    k = 1 + int(k_frac * (m - 1))
    rules = DQRules(
        hot_level=level,
        unstable_level=unstable,
        persist_k=k,
        persist_m=m,
        partial_window="available",
    )
    dq = dq_array(cube.sel(anneal=RATE_PERIODS), rules=rules, anneal_num=number)
    held = sorted(RATE_PERIODS)
    window = held[: held.index(number) + 1][-m:]
    with np.errstate(invalid="ignore"):
        hot_n = sum((_arr(truth, n, "sci_mean") > level).astype(int) for n in window)
        unst_n = sum((_arr(truth, n, "stability") > unstable).astype(int) for n in window)
    np.testing.assert_array_equal(dq.values, 16 * (hot_n >= k) | 4 * (unst_n >= k))
    assert dq.attrs["window_anneals"].tolist() == window


def test_partial_window(cube, truth):
    rules = DQRules(hot_level=0.1, hot_nsigma=None, persist_k=2, persist_m=3)
    with pytest.raises(ValueError, match="only 2 .*partial_window='available'"):
        dq_array(cube, rules=rules, anneal_num=5)
    lenient = DQRules(
        hot_level=0.1, hot_nsigma=None, persist_k=2, persist_m=3, partial_window="available"
    )
    dq = dq_array(cube, rules=lenient, anneal_num=5)
    assert dq.attrs["window_anneals"].tolist() == [3, 5]
    both = (_arr(truth, 3, "sci_mean") > 0.1) & (_arr(truth, 5, "sci_mean") > 0.1)
    np.testing.assert_array_equal(dq.values, 16 * both)


def test_select_by_date_and_attrs(cube):
    rules = DQRules(hot_level=0.1, hot_nsigma=5, hot_combine="and")
    start, end = _dates(RATE_PERIODS.index(9))
    by_date = dq_array(cube, rules=rules, date=str(start + 3 * DAY).replace("T", " "))
    by_number = dq_array(cube, rules=rules, anneal_num=9)
    xr.testing.assert_equal(by_date, by_number)
    attrs = by_number.attrs
    assert attrs["anneal"] == 9 and attrs["unit_system"] == "rate"
    assert attrs["anneal_start"].startswith(str(start).replace("T", " "))
    assert attrs["anneal_end"].startswith(str(end).replace("T", " "))
    assert DQRules.from_dict(json.loads(attrs["rules"])) == rules
    assert attrs["flag_meanings"].split()[4] == "hot_pixel"
    np.testing.assert_array_equal(by_number["row"].values, np.arange(SHAPE[0]))


def test_units_never_mixed(db, cube, truth):
    for source in (cube, db):
        with pytest.raises(
            UnitMismatchError, match=r"hot_level=0.1 is in electron / s.*\{12: 'counts'\}"
        ):
            dq_array(source, rules=DQRules(hot_level=0.1), anneal_num=COUNTS_PERIOD)
    rules = DQRules(hot_level=0.1, persist_k=1, persist_m=2)  # window 9, 12 -> mixed
    with pytest.raises(UnitMismatchError, match="'counts'"):
        dq_array(cube, rules=rules, anneal_num=COUNTS_PERIOD)
    # the relative rule is unit-free: allowed on a counts period, and scale invariant
    rules = DQRules(hot_level=None, hot_nsigma=5, unstable_level=2.0)
    dq = dq_array(cube, rules=rules, anneal_num=COUNTS_PERIOD)
    sci = _arr(truth, COUNTS_PERIOD, "sci_mean")
    with np.errstate(invalid="ignore"):
        expected = 16 * np_hot(sci, nsigma=5) | 4 * (_arr(truth, COUNTS_PERIOD, "stability") > 2)
    np.testing.assert_array_equal(dq.values, expected)
    assert dq.attrs["unit_system"] == "counts"


def test_bad_cube_and_period(cube):
    with pytest.raises(TypeError, match="ds must be an xarray.Dataset"):
        dq_array(cube["sci_mean"], anneal_num=5)
    with pytest.raises(ValueError, match=r"missing \['anneal'\].*not one period"):
        dq_array(cube.sel(anneal=5), anneal_num=5)
    with pytest.raises(ValueError, match=r"lacks the properties \['stability'\]"):
        dq_array(cube.drop_vars("stability"), rules=DQRules(unstable_level=2.0), anneal_num=5)
    with pytest.raises(CubeQueryError, match="anneal period 4 is not in the cube"):
        dq_array(cube, anneal_num=4)
    with pytest.raises(CubeQueryError, match="before the first period"):
        dq_array(cube, date="2000-01-01")
    with pytest.raises(ValueError, match="exactly one of date or anneal_num"):
        dq_array(cube)
    with pytest.raises(TypeError, match="rules must be a DQRules"):
        dq_array(cube, rules={"hot_level": 0.1}, anneal_num=5)


def test_all_nan_frame_refused(cube):
    broken = cube.copy()
    broken["sci_mean"] = broken["sci_mean"].where(broken["anneal"] != 6)
    with pytest.raises(ValueError, match=r"sci_mean of periods \[6\] is all NaN"):
        dq_array(broken, rules=DQRules(hot_nsigma=5), anneal_num=6)
    dq = dq_array(broken, rules=DQRules(hot_level=0.1, hot_nsigma=None), anneal_num=6)
    assert not dq.values.any()


def test_netcdf_keeps_cf_flags(dq7, tmp_path):
    dq7.to_netcdf(tmp_path / "dq.nc", engine="h5netcdf")
    with xr.open_dataarray(tmp_path / "dq.nc", engine="h5netcdf") as back:
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back.values, dq7.values)
        masks = back.attrs["flag_masks"]
        meanings = back.attrs["flag_meanings"].split()
        # CF decoding of the hot_pixel meaning equals the bit test written by hand
        hot = (back.values & masks[meanings.index("hot_pixel")]) != 0
        np.testing.assert_array_equal(hot, (dq7.values & 16) == 16)
        assert back.attrs["window_anneals"].tolist() == [5, 6, 7]


def test_hot_pixel_counts(cube, truth):
    rate = cube.sel(anneal=RATE_PERIODS)
    counts = hot_pixel_counts(rate, 0.1)
    expected = [np.count_nonzero(_arr(truth, n, "sci_mean") > 0.1) for n in RATE_PERIODS]
    assert counts.dims == ("anneal",)
    assert counts.values.tolist() == expected
    assert counts["anneal"].values.tolist() == RATE_PERIODS
    with pytest.raises(UnitMismatchError, match=r"periods \[12\] are in the 'counts'"):
        hot_pixel_counts(cube, 0.1)


# -- files ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dq7(cube):
    rules = DQRules(hot_level=0.1, hot_nsigma=5, unstable_level=2.0, persist_k=2, persist_m=3)
    return dq_array(cube, rules=rules, anneal_num=7)


def test_fits_round_trip(dq7, tmp_path):
    path = write_dq_fits(dq7, tmp_path / "dq.fits")
    with fits.open(path, do_not_scale_image_data=True) as raw:  # the file as stored
        ext = raw["DQ"].header
        assert ext["BITPIX"] == 16 and ext["EXTVER"] == 1
        assert "BZERO" not in ext and "BSCALE" not in ext
        assert raw["DQ"].data.dtype == np.dtype(">i2")
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "DQ"]
        data = hdul["DQ"].data
        assert data.dtype == np.dtype(">i2")  # plain int16, as calstis DQ arrays
        assert data.view(np.uint16).tobytes() == dq7.values.astype("<u2").byteswap().tobytes()
        np.testing.assert_array_equal(data, dq7.values)
        hdr, ext = hdul[0].header, hdul["DQ"].header
        assert hdr["APPLIES"] == 7 and "FILETYPE" not in hdr  # a product, not for CRDS
        assert hdr["ANNSTART"] == dq7.attrs["anneal_start"]
        assert hdr["ANNEND"] == dq7.attrs["anneal_end"]
        assert hdr["UNITSYS"] == "rate" and hdr["PERIODS"] == "5,6,7"
        assert hdr["HOTTHR"] == dq7.attrs["hot_sigma_threshold"]
        assert hdr["NNODATA"] == 0
        assert hdr["NHOT"] == np.count_nonzero(dq7.values & 16)
        assert hdr["NUNSTAB"] == np.count_nonzero(dq7.values & 4)
        assert hdr["NFLAGGED"] == np.count_nonzero(dq7.values)
        assert hdr["NBOTH"] == np.count_nonzero((dq7.values & 16) & ((dq7.values & 4) << 2))
        assert hdr["NFLAGGED"] == hdr["NHOT"] + hdr["NUNSTAB"] - hdr["NBOTH"]
        assert hdr["NFLAGGED"] == np.count_nonzero(data)  # the header counts the file
        assert DQRules.from_dict(json.loads(hdr["RULES"])) == DQRules.from_dict(
            json.loads(dq7.attrs["rules"])
        )
        assert any("stability > 2" in str(c) for c in hdr["COMMENT"])
        meanings = {ext[f"DQBIT{i:02d}"]: 1 << i for i in range(15)}
        assert meanings["hot_pixel"] == 16 and meanings["bad_detector_pixel"] == 4


def test_fits_unused_rules_absent_and_errors(cube, dq7, tmp_path):
    dq = dq_array(cube, rules=DQRules(hot_level=0.2, hot_nsigma=None), anneal_num=3)
    path = write_dq_fits(dq, tmp_path / "level.fits")
    with fits.open(path) as hdul:
        hdr = hdul[0].header
        assert json.loads(hdr["RULES"])["hot_level"] == 0.2
        for key in ("HOTMED", "HOTSTD", "HOTTHR"):  # no relative rule: no clipped statistics
            assert key not in hdr
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"level.fits: file exists; pass overwrite=True"):
        write_dq_fits(dq7, path)
    assert path.read_bytes() == before
    write_dq_fits(dq7, path, overwrite=True)
    with fits.open(path) as hdul:
        assert hdul[0].header["APPLIES"] == 7
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_dq_fits(dq7, tmp_path / "nowhere" / "dq.fits")
    with pytest.raises(ValueError, match=r"dq must be uint16 on dims \('row', 'col'\), got "):
        write_dq_fits(dq7.astype(np.int32), tmp_path / "x.fits")
    with pytest.raises(ValueError, match=r"got uint16 on \('y', 'col'\)"):
        write_dq_fits(dq7.rename({"row": "y"}), tmp_path / "x.fits")
    bare = xr.DataArray(dq7.values, dims=("row", "col"))
    with pytest.raises(ValueError, match="lacks the attributes .*make it with"):
        write_dq_fits(bare, tmp_path / "x.fits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["level.fits"]  # no leftovers


def test_ecsv_round_trip(cube, truth, dq7, tmp_path):
    path = write_flagged_table(dq7, cube, tmp_path / "flagged.ecsv")
    table = Table.read(path, format="ascii.ecsv")
    rows, cols = np.nonzero(dq7.values)
    assert len(table) == len(rows) > 0
    np.testing.assert_array_equal(table["row"], rows)
    np.testing.assert_array_equal(table["col"], cols)
    np.testing.assert_array_equal(table["dq"], dq7.values[rows, cols])
    assert table["dq"].dtype == np.uint16
    for v, text, cats in zip(table["dq"], table["flags"], table["categories"], strict=True):
        names = [m for b, m in ((4, "bad_detector_pixel"), (16, "hot_pixel")) if v & b]
        assert text == ",".join(names)
        assert cats == ",".join(c for b, c in ((16, "hot"), (4, "unstable")) if v & b)
    only_unstable = table["dq"] == 4
    assert only_unstable.any() and set(table["categories"][only_unstable]) == {"unstable"}
    for name in PROPERTIES:
        np.testing.assert_array_equal(table[name], truth[7][name].values[rows, cols])
    assert str(table["sci_mean"].unit) == "electron / s"
    assert str(table["readnoise"].unit) == "electron"
    assert table["stability"].unit is None
    meta = table.meta
    assert meta["anneal"] == 7 and meta["window_anneals"] == [5, 6, 7]
    assert meta["anneal_start"] == dq7.attrs["anneal_start"]
    assert DQRules.from_dict(meta["rules"]) == DQRules.from_dict(json.loads(dq7.attrs["rules"]))
    assert {"stiscube", "numpy", "astropy", "xarray"} <= set(meta["software_versions"])
    assert meta["created"][:2] == "20"
    with pytest.raises(FileExistsError, match="file exists"):
        write_flagged_table(dq7, cube, path)


def test_table_counts_units_and_mismatch(cube, truth, dq7, tmp_path):
    dq = dq_array(cube, rules=DQRules(hot_level=None, hot_nsigma=5), anneal_num=COUNTS_PERIOD)
    table = flagged_pixels_table(dq, cube)
    assert str(table["sci_mean"].unit) == "ct"
    assert len(table) == np.count_nonzero(dq.values)
    # a DQ array made from another cube with the same period number is refused
    other = cube.assign_coords(anneal_start=cube["anneal_start"] + np.timedelta64(1, "D"))
    with pytest.raises(ValueError, match="it was made from another cube"):
        flagged_pixels_table(dq7, other)
    with pytest.raises(CubeQueryError, match="anneal period 7 is not in the cube"):
        flagged_pixels_table(dq7, cube.sel(anneal=[3, 5]))
    empty = dq_array(cube, rules=DQRules(hot_level=1e6, hot_nsigma=None), anneal_num=3)
    assert len(flagged_pixels_table(empty, cube)) == 0
