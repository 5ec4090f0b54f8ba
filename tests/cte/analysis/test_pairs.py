"""Tests of cte.analysis.pairs: pairing rules checked against the images' own header values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cte import InvalidPhotometryError
from cte.analysis.pairs import pair_images, validate_photometry
from tests.cte._analysis_fixtures import same_chip, small

_IDENTICAL = ("proposal", "visit", "exptime", "flash", "ctecorr", "postarg1")


def _lookup(ds, image):
    return {name: ds[name].values[list(ds["image"].values).index(image)]
            for name in ("chip", "mjd", *_IDENTICAL)}


def test_nominal_pairs_match_chip1_with_chip2_of_identical_setup():
    ds = small().photometry
    pairs = pair_images(ds)
    # every exposure of the simulated campaign has one chip-2 and one chip-1 image
    n_expected = int(np.sum(ds["chip"].values == 2))
    assert pairs.sizes["pair"] == n_expected
    assert pairs.sizes["unpaired"] == 0
    used = np.concatenate([pairs["image_num"].values, pairs["image_den"].values])
    assert len(set(used)) == used.size == ds.sizes["image"]
    for num, den in zip(pairs["image_num"].values, pairs["image_den"].values, strict=True):
        a, b = _lookup(ds, num), _lookup(ds, den)
        assert (a["chip"], b["chip"]) == (1, 2)
        for name in _IDENTICAL:
            assert a[name] == b[name], name
    assert set(pairs["kind"].values) == {"nominal"}
    assert pairs.attrs["target"] == ds.attrs["target"]


def test_pairing_does_not_depend_on_image_order():
    ds = small().photometry
    perm = np.random.default_rng(3).permutation(ds.sizes["image"])
    a = pair_images(ds)
    b = pair_images(ds.isel(image=perm))
    assert sorted(a["pair"].values) == sorted(b["pair"].values)


def _duplicate_group(ds):
    """Add a second chip-2/chip-1 exposure (later in time) to the first exposure group."""
    first = ds.isel(image=[0, 1, 2, 3])  # chip 2 FLT/FLC then chip 1 FLT/FLC of epoch 1
    extra = first.assign_coords(
        image=[f"{i}x" for i in first["image"].values],
        mjd=("image", first["mjd"].values + 0.05),
    )
    return xr.concat([ds, extra], dim="image")


def test_several_exposures_per_group_pair_in_time_order():
    ds = _duplicate_group(small().photometry)
    pairs = pair_images(ds)
    assert pairs.sizes["unpaired"] == 0
    for num, den in zip(pairs["image_num"].values, pairs["image_den"].values, strict=True):
        # the later (x) exposures pair with each other, the originals with each other
        assert num.endswith("x") == den.endswith("x")
        assert abs(_lookup(ds, num)["mjd"] - _lookup(ds, den)["mjd"]) < 0.01


def test_unequal_counts_pair_closest_in_time_and_report_the_rest():
    ds = _duplicate_group(small().photometry)
    # drop the original chip-1 FLT image: the two chip-2 FLT compete for one chip 1
    chip1_flt = next(i for i in ds["image"].values[:4] if _lookup(ds, i)["chip"] == 1
                 and _lookup(ds, i)["ctecorr"] == "FLT")
    ds = ds.sel(image=[i for i in ds["image"].values if i != chip1_flt])
    pairs = pair_images(ds)
    assert pairs.sizes["unpaired"] == 1
    lonely = pairs["unpaired_image"].values[0]
    assert _lookup(ds, lonely)["chip"] == 2 and not lonely.endswith("x")
    assert "no chip 1 image" in pairs["unpaired_reason"].values[0]


def test_two_visits_of_one_proposal_never_pair_across_visits():
    """Visit 02 of the same proposal, setup and exposure time lost its chip-1 exposure; its
    chip-2 image, taken closer in time to visit 01's chip-1 image than visit 01's own chip-2
    image, must stay unpaired rather than steal that chip-1 image."""
    ds = small().photometry
    first = ds.isel(image=[0, 1, 2, 3])  # visit 01: chip 2 FLT/FLC at t0, chip 1 at t0 + 0.003 d
    chip2 = first.isel(image=np.flatnonzero(first["chip"].values == 2))
    t0 = float(chip2["mjd"].values[0])
    visit2 = chip2.assign_coords(
        image=[f"{i}_v02" for i in chip2["image"].values],
        visit=("image", ["02"] * chip2.sizes["image"]),
        mjd=("image", np.full(chip2.sizes["image"], t0 + 0.0025)),
    )
    ds = xr.concat([ds, visit2], dim="image")
    pairs = pair_images(ds)
    for num, den in zip(pairs["image_num"].values, pairs["image_den"].values, strict=True):
        assert _lookup(ds, num)["visit"] == _lookup(ds, den)["visit"], (num, den)
    assert sorted(pairs["unpaired_image"].values) == sorted(visit2["image"].values)
    assert all("visit" in reason for reason in pairs["unpaired_reason"].values)
    paired = set(pairs["image_num"].values) | set(pairs["image_den"].values)
    assert set(first["image"].values) <= paired


def test_postarg1_difference_prevents_pairing():
    ds = small().photometry
    postarg1 = ds["postarg1"].values.copy()
    postarg1[ds["chip"].values == 1] = 2.5
    pairs = pair_images(ds.assign_coords(postarg1=("image", postarg1)))
    assert pairs.sizes["pair"] == 0
    assert pairs.sizes["unpaired"] == ds.sizes["image"]


def test_same_chip_set_paired_by_orientation_and_time_not_names():
    synth = same_chip()
    ds = synth.photometry
    pairs = pair_images(ds)
    assert pairs.attrs["layout"] == "180"
    assert set(pairs["kind"].values) == {"180"}
    assert pairs.sizes["pair"] == ds.sizes["image"] // 2
    for num, den in zip(pairs["image_num"].values, pairs["image_den"].values, strict=True):
        a, b = _lookup(ds, num), _lookup(ds, den)
        assert a["chip"] == b["chip"]
        assert (a["visit"], b["visit"]) == ("11", "10")  # rotated visit over the first
        assert b["mjd"] < a["mjd"] < b["mjd"] + 2
        for name in ("proposal", "exptime", "flash", "ctecorr"):
            assert a[name] == b[name]
        # independent check of the orientation: transfers anti-correlated
        t_num = ds["transfers"].sel(image=num).values
        t_den = ds["transfers"].sel(image=den).values
        good = np.isfinite(t_num) & np.isfinite(t_den)
        assert np.corrcoef(t_num[good], t_den[good])[0, 1] < -0.9

    # file names in reverse alphabetical order of the visits: same pairs
    renamed = {i: ("a" if _lookup(ds, i)["visit"] == "11" else "z") + i
               for i in ds["image"].values}
    ds2 = ds.assign_coords(image=[renamed[i] for i in ds["image"].values])
    pairs2 = pair_images(ds2)
    expected = sorted(f"{renamed[n]}|{renamed[d]}" for n, d in
                      zip(pairs["image_num"].values, pairs["image_den"].values, strict=True))
    assert sorted(pairs2["pair"].values) == expected


def test_layout_can_be_forced():
    ds = small().photometry
    pairs = pair_images(ds, layout="180")
    # nominal data forced into the same-chip rule: chips differ, so nothing pairs
    assert pairs.sizes["pair"] == 0
    with pytest.raises(ValueError,
                       match=r"layout must be one of \['auto', 'nominal', '180'\], got 'sideways'"):
        pair_images(ds, layout="sideways")


def test_missing_coordinate_is_named_with_the_dataset():
    ds = small().photometry.drop_vars("postarg1")
    with pytest.raises(InvalidPhotometryError, match=r"ngc104/F502N/flash12.*postarg1"):
        pair_images(ds)


def test_bad_chip_values_are_rejected():
    ds = small().photometry
    chip = ds["chip"].values.copy()
    chip[0] = 3
    with pytest.raises(InvalidPhotometryError, match=r"'chip' must take values in \[1, 2\]"):
        validate_photometry(ds.assign_coords(chip=("image", chip)))


def test_missing_variable_is_named():
    ds = small().photometry.drop_vars("transfers")
    with pytest.raises(InvalidPhotometryError, match=r"missing variable\(s\) \['transfers'\]"):
        validate_photometry(ds, variables=("flux", "transfers"))


def test_not_a_dataset():
    with pytest.raises(InvalidPhotometryError, match="must be an xarray.Dataset"):
        validate_photometry({"flux": 1})
