"""stores.common.provenance: one record, written to xarray attrs, JSON and FITS headers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from stores import CubeStore, __version__
from stores.common.provenance import (
    KEYS,
    cube_checksum,
    fits_cards,
    from_attrs,
    from_header,
    history_cards,
    history_lines,
    now,
    provenance,
    set_card,
    slice_checksums,
    software,
    to_attrs,
    to_header,
    versions,
)
from stores.common.testing import example_coords, example_schema, example_slice


@dataclass(frozen=True)
class _Opts:
    sigma: float = 3.0
    combine: str = "or"


def test_software_versions_and_now():
    assert software() == f"stiscube {__version__}"
    got = versions(("numpy", "no_such_module_xyz"))
    assert got["stiscube"] == __version__
    assert got["numpy"] == np.__version__
    assert got["no_such_module_xyz"] == "not installed"
    assert "." in got["python"]
    stamp = now()
    parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - parsed).total_seconds()) < 5


def test_provenance_record_keys_and_values(tmp_path):
    sums = {10: "b" * 64, 2: "a" * 64}
    prov = provenance(
        inputs=[tmp_path / "x.fits", "s3://bucket/y.fits"],
        options=_Opts(),
        cube_version=np.int64(7),
        checksums=sums,
        libraries=("numpy",),
        created="2026-12-01T10:00:00Z",
        title="pixel properties",
        n_frames=np.int32(12),
    )
    assert list(prov) == [
        "software", "software_versions", "created", "inputs", "options", "cube_version",
        "checksums", "cubesum", "title", "n_frames",
    ]
    assert prov["inputs"] == [str(tmp_path / "x.fits"), "s3://bucket/y.fits"]
    assert prov["options"] == {"sigma": 3.0, "combine": "or"}
    assert prov["cube_version"] == 7 and type(prov["cube_version"]) is int
    assert list(prov["checksums"]) == ["2", "10"]  # numeric label order
    # independent: sha256 of the checksums joined in period order
    assert prov["cubesum"] == hashlib.sha256(("a" * 64 + "b" * 64).encode()).hexdigest()
    assert type(prov["n_frames"]) is int
    json.dumps(prov)  # JSON-able as is
    minimal = provenance(libraries=())
    assert list(minimal) == ["software", "software_versions", "created"]
    assert set(KEYS) >= set(prov) - {"title", "n_frames"}


def test_provenance_refuses_extra_standard_keys():
    with pytest.raises(ValueError, match=r"provenance keys \['software'\] have their own"):
        provenance(software="other")


def test_cube_checksum_orders_labels():
    assert cube_checksum({"b": "2", "a": "1"}) == hashlib.sha256(b"12").hexdigest()
    assert cube_checksum({10: "x", 9: "y"}) == hashlib.sha256(b"yx").hexdigest()


def test_attrs_round_trip_through_netcdf(tmp_path):
    prov = provenance(inputs=["a.fits"], options={"sigma": 3.0, "keep": True},
                      checksums={1: "c" * 64}, cube_version=3, libraries=("xarray",))
    attrs = to_attrs(prov)
    assert all(isinstance(v, str | int | float) for v in attrs.values())
    ds = xr.Dataset({"v": ("x", np.arange(3))}, attrs={"title": "t", **attrs})
    path = tmp_path / "p.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        got = from_attrs(back.attrs)
    assert got == prov  # "title" is not provenance and is left out


def test_fits_header_round_trip(tmp_path):
    long_options = {f"option_number_{i}": "x" * 50 for i in range(3)}  # lines > 72 chars
    prov = provenance(
        inputs=[f"/data/o{i:08d}_flt.fits" for i in range(3)],
        options={"sigma": 3.5, "maxiters": None, **long_options},
        cube_version=12,
        checksums={1: "d" * 64, 2: "e" * 64},
        libraries=("numpy", "astropy"),
        created="2026-12-01T10:00:00Z",
    )
    cards = fits_cards(prov)
    assert [c[0] for c in cards] == ["DATE", "SOFTWARE", "CUBEVER", "CUBESUM"]
    assert cards[0][1] == "2026-12-01T10:00:00"  # FITS DATE format, no "Z"
    hdu = fits.PrimaryHDU(np.zeros((2, 2), dtype=np.uint16))
    hdu.header.add_history("an unrelated history line before")
    to_header(hdu.header, prov)
    hdu.header.add_history("an unrelated history line after")
    path = tmp_path / "p.fits"
    hdu.writeto(path)
    with fits.open(path) as hdul:
        header = hdul[0].header
        assert header["DATE"] == "2026-12-01T10:00:00"
        assert header["CUBEVER"] == 12
        assert max(len(str(h)) for h in header["HISTORY"]) == 72  # astropy split long lines
        back = from_header(header)
    assert back == prov


@pytest.mark.parametrize("shift", range(4))
def test_fits_round_trip_at_card_boundaries(tmp_path, shift):
    """A line of exactly one card (72 characters) followed by another provenance line, and
    pieces that end with a space (astropy strips a card's trailing space), come back whole:
    the pieces carry their own continuation mark."""
    exact = "/d/" + "p" * (53 - 3 - shift)  # 'provenance input "<path>"' is 72 - shift chars
    spaced = "x" * shift + " ".join(["abcd"] * 100)  # a space falls at a piece boundary
    prov = provenance(
        inputs=[exact, "/d/second.fits"],
        options={"note": spaced, "a" * shift: 1},
        checksums={1: "f" * 64},
        libraries=(),
        created="2026-12-01T10:00:00Z",
    )
    assert len(history_lines(prov)[1]) == 72 - shift
    hdu = fits.PrimaryHDU()
    to_header(hdu.header, prov)
    hdu.header.add_history("provenance-like text that is not a record")
    path = tmp_path / "b.fits"
    hdu.writeto(path)
    with fits.open(path) as hdul:
        cards = [str(h) for h in hdul[0].header["HISTORY"]]
        back = from_header(hdul[0].header)
    assert all(len(c) <= 72 for c in cards)
    assert back == prov
    assert history_cards(prov) == cards[:-1]


def test_damaged_history_record_is_refused_by_name():
    header = fits.Header()
    to_header(header, provenance(options={"sigma": 3.0}, libraries=(), created="x"))
    header.add_history('provenance option {"sigma": ')  # a record cut short
    with pytest.raises(ValueError, match=r"^HISTORY provenance 'option' is damaged \(not JSON"):
        from_header(header)


def test_history_lines_shape():
    prov = provenance(inputs=["a.fits"], options={"s": 1}, libraries=(), created="x")
    python = prov["software_versions"]["python"]
    assert history_lines(prov) == [
        f'provenance software_versions {{"stiscube": "{__version__}", "python": "{python}"}}',
        'provenance input "a.fits"',
        'provenance option {"s": 1}',
    ]


def test_slice_checksums_follow_the_store(tmp_path: Path):
    schema = example_schema(shape=(8, 6), chunks=(4, 3))
    store = CubeStore.create(tmp_path / "c.zarr", schema)
    for label in (1, 2):
        store.append(example_slice(schema, label), label, coords=example_coords(label))
    sums = slice_checksums(store, [2, 1])
    assert list(sums) == ["2", "1"] and sums["1"] != sums["2"]
    # independent: sha256 of the JSON of the store's own per-variable digests
    info = store.slice_info(1)
    expected = hashlib.sha256(json.dumps(info["sha256"], sort_keys=True).encode()).hexdigest()
    assert sums["1"] == expected
    # a slice rewritten with other values changes its checksum
    store.replace(example_slice(schema, 1, seed=5), 1, coords=example_coords(1))
    assert slice_checksums(store, [1])["1"] != sums["1"]


def test_set_card_fits_the_comment_into_80_characters():
    header = fits.Header()
    set_card(header, "CUBESUM", "f" * 64, "sha256 over the slices' checksums")
    set_card(header, "SOFTWARE", "stiscube 1.0", "software that made this file")
    set_card(header, "NOTE", "n" * 100, "a long string value")
    cards = {c.keyword: c for c in header.cards}
    assert cards["CUBESUM"].value == "f" * 64 and len(cards["CUBESUM"].image) == 80
    assert cards["SOFTWARE"].comment == "software that made this file"
    assert header["NOTE"] == "n" * 100  # CONTINUE cards, value intact
