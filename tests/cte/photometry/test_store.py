"""The photometry store: contract, round trip, atomic replacement, union of stars."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cte import InvalidPhotometryError
from cte import flags as F
from cte.photometry._measure import _dataset
from cte.photometry.align import Alignment
from cte.photometry.store import PhotometryStore
from cte.schema import COORDS, VARIABLES, validate
from stores import KeyNotFoundError, ReadOnlyStoreError
from tests._threads import errors_in_threads


def make_image(image="iabc01a1q_flt", *, stars=(1, 2, 3), radii=(3.0, 5.0), flash=12.0,
               mjd=56000.0, scale=1.0, target="ngc104", filt="F502N"):
    """A one-image photometry Dataset with recognisable values."""
    n, k = len(stars), len(radii)
    header = {"image": image, "rootname": image[:9], "ctecorr": image[-3:].upper(),
              "proposal": 12692, "visit": image[4:6], "mjd": mjd, "exptime": 348.0,
              "exptime_class": "long", "postarg1": 0.0, "postarg2": 0.0, "field_chip": 2,
              "flash": flash, "target": target, "filter": filt, "orientat": 37.0}
    alignment = Alignment(shift_x=0.5, shift_y=-0.25, rotation=0.01, center=(63.5, 63.5),
                          residual_rms=0.05, n_matched=10, n_detected=12)
    flux = scale * (np.arange(n * k, dtype=float).reshape(n, k) + 100.0)
    return _dataset(header, np.asarray(stars), np.asarray(radii), alignment, 13.0, False,
                    flux=flux, flux_masked=flux + 1, flux_err=np.sqrt(flux),
                    background=np.full(n, 13.0), x=np.arange(n) + 10.0,
                    y=np.arange(n) + 900.0, transfers=np.arange(n) + 900.0,
                    flags=np.zeros(n, np.int32))


def test_contract_of_a_measured_dataset(measured):
    store = PhotometryStore(measured.store, mode="r")
    for key, ds in store.read_all().items():
        validate(ds)
        assert set(ds.dims) == {"image", "star", "aperture"}
        target, filt, flash = key.split("/")
        assert (ds.attrs["target"], ds.attrs["filter"]) == (target, filt)
        assert f"flash{ds.attrs['flash']}" == flash
        for name in [*VARIABLES, *COORDS]:
            assert ds[name].attrs["units"] and ds[name].attrs["long_name"]
        assert ds["flags"].dtype == np.int32 and ds["chip"].dtype == np.int8
        assert ds["proposal"].dtype == np.int64 and ds["star"].dtype == np.int64
        assert ds["flux"].attrs["units"] == "electron"
        assert set(ds["ctecorr"].values) <= {"FLT", "FLC"}
        assert set(ds["exptime_class"].values) <= {"short", "long"}
        assert all(len(v) == 2 for v in ds["visit"].values)
        assert (ds["image"].values == np.char.add(
            ds["rootname"].values.astype(str),
            np.char.add("_", np.char.lower(ds["ctecorr"].values.astype(str))))).all()
        assert list(ds["flags"].attrs["flag_masks"]) == [f.bit for f in F.STAR_FLAGS]


def test_round_trip(store_url):
    store = PhotometryStore(store_url)
    ds = make_image()
    assert store.write_images([ds]) == ["ngc104/F502N/flash12"]
    back = store.read("ngc104/F502N/flash12")
    xr.testing.assert_identical(back.drop_attrs(deep=False), ds.drop_attrs(deep=False))
    assert back.attrs["target"] == "ngc104" and back.attrs["flash"] == 12
    assert "ngc104/F502N/flash12" in store and len(store) == 1
    table = store.images()
    assert list(table["image"]) == ["iabc01a1q_flt"]
    assert table["n_stars"].iloc[0] == 3 and table["apertures"].iloc[0] == (3.0, 5.0)


def test_images_are_merged_and_replaced(store_url):
    store = PhotometryStore(store_url)
    store.write_images([make_image("iabc01a1q_flt", stars=(1, 2, 3), mjd=56000.0)])
    store.write_images([make_image("iabc01a2q_flt", stars=(2, 3, 4), mjd=55000.0)])
    ds = store.read("ngc104/F502N/flash12")
    # images sorted by time, stars the union, missing entries NaN and OFF_CHIP
    assert list(ds.image.values) == ["iabc01a2q_flt", "iabc01a1q_flt"]
    assert list(ds.star.values) == [1, 2, 3, 4]
    first = ds.sel(image="iabc01a1q_flt")
    assert np.isnan(first.flux.sel(star=4)).all() and int(first.flags.sel(star=4)) == F.OFF_CHIP
    assert int(first.flags.sel(star=1)) == 0
    second = ds.sel(image="iabc01a2q_flt")
    assert np.isnan(second.x.sel(star=1)) and int(second.flags.sel(star=1)) == F.OFF_CHIP
    # measuring an image again replaces it as a whole
    store.write_images([make_image("iabc01a1q_flt", stars=(1, 2), scale=2.0)])
    ds = store.read("ngc104/F502N/flash12")
    assert ds.sizes["image"] == 2
    again = ds.sel(image="iabc01a1q_flt")
    np.testing.assert_array_equal(again.flux.sel(star=[1, 2]).values,
                                  2.0 * (np.arange(4.0).reshape(2, 2) + 100.0))
    assert np.isnan(again.flux.sel(star=3)).all()  # not measured this time
    np.testing.assert_array_equal(ds.sel(image="iabc01a2q_flt").flux.values,
                                  store.read("ngc104/F502N/flash12")
                                  .sel(image="iabc01a2q_flt").flux.values)


def test_keys_by_target_filter_flash(tmp_path):
    store = PhotometryStore(tmp_path / "s")
    written = store.write_images([make_image("iabc01a1q_flt"),
                                  make_image("iabc01a1q_flc", flash=0.0),
                                  make_image("iabc01a2q_flt", target="ngc6791"),
                                  make_image("iabc01a3q_flt", filt="F606W")])
    assert written == store.keys() == ["ngc104/F502N/flash0", "ngc104/F502N/flash12",
                                       "ngc104/F606W/flash12", "ngc6791/F502N/flash12"]
    assert PhotometryStore.key("ngc104", "F502N", 12.0) == "ngc104/F502N/flash12"
    assert PhotometryStore.key("ngc104", "F502N", np.float32(0.0)) == "ngc104/F502N/flash0"
    with pytest.raises(ValueError, match="flash must be an integer, got 12.5"):
        PhotometryStore.key("ngc104", "F502N", 12.5)
    with pytest.raises(TypeError, match="flash must be an integer, got True"):
        PhotometryStore.key("ngc104", "F502N", True)
    assert (tmp_path / "s" / "ngc104" / "F502N" / "flash12.nc").is_file()


def test_invalid_datasets_write_nothing(tmp_path):
    store = PhotometryStore(tmp_path / "s")
    store.write_images([make_image("iabc01a1q_flt")])
    before = store.read("ngc104/F502N/flash12")
    broken = make_image("iabc01a2q_flt").drop_vars("flux_err")
    with pytest.raises(InvalidPhotometryError, match="missing variable 'flux_err'"):
        store.write_images([make_image("iabc01a3q_flt"), broken])
    no_units = make_image("iabc01a2q_flt")
    no_units["x"].attrs.pop("units")
    with pytest.raises(InvalidPhotometryError, match="variable 'x' lacks the 'units'"):
        store.write_images([no_units])
    with pytest.raises(InvalidPhotometryError, match="given twice"):
        store.write_images([make_image("iabc01a2q_flt"), make_image("iabc01a2q_flt")])
    with pytest.raises(InvalidPhotometryError, match="expected an xarray.Dataset"):
        store.write_images([{"flux": 1}])
    xr.testing.assert_identical(store.read("ngc104/F502N/flash12"), before)


def test_delete_and_read_only(tmp_path):
    store = PhotometryStore(tmp_path / "s")
    store.write_images([make_image("iabc01a1q_flt"), make_image("iabc01a2q_flt")])
    store.delete_images("ngc104/F502N/flash12", ["iabc01a1q_flt"])
    assert list(store.read("ngc104/F502N/flash12").image.values) == ["iabc01a2q_flt"]
    with pytest.raises(KeyError, match="not stored"):
        store.delete_images("ngc104/F502N/flash12", ["nope_flt"])
    reader = PhotometryStore(tmp_path / "s", mode="r")
    with pytest.raises(ReadOnlyStoreError):
        reader.write_images([make_image("iabc01a3q_flt")])
    store.delete_images(("ngc104", "F502N", "flash12"), ["iabc01a2q_flt"])
    assert store.keys() == []
    with pytest.raises(KeyNotFoundError, match="no dataset under key"):
        reader.read("ngc104/F502N/flash12")
    with pytest.raises(ValueError, match=r"mode must be one of \['a', 'r'\], got 'w'"):
        PhotometryStore(tmp_path / "s", mode="w")
    with pytest.raises(ValueError, match=r"lock_timeout must be >= 0 \(s\), got -1"):
        PhotometryStore(tmp_path / "refused", lock_timeout=-1)
    assert not (tmp_path / "refused").exists()


def test_concurrent_writers_of_one_key_lose_nothing(tmp_path):
    path = tmp_path / "s"
    PhotometryStore(path)

    def write(i):
        PhotometryStore(path).write_images([make_image(f"iabc01{i:02d}q_flt")])

    assert errors_in_threads(write, 4) == []
    ds = PhotometryStore(path).read("ngc104/F502N/flash12")
    assert ds.sizes["image"] == 4
