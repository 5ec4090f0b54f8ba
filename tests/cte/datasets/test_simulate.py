"""The campaign simulator: geometry, truth, determinism, injected loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from cte.analysis.lossmodel import LossModel
from cte.datasets import FieldPhysics
from cte.datasets._render import render_stars
from cte.datasets.simulate import DEFAULT_LOSS_MODELS, FULL_WELL, load_campaign, simulate_campaign
from cte.schema import TRUTH_VARIABLES


def _open(campaign, image):
    row = campaign.images.set_index("image").loc[image]
    return row, fits.open(campaign.root / row.path)


def test_files_catalogs_and_truth_are_written(campaign):
    assert all(p.is_file() for p in campaign.files)
    assert set(campaign.targets) == {"ngc104", "ngc6583"}
    cat = campaign.catalog("ngc104")
    assert cat.colnames == ["master_id", "ra", "dec", "flux"]
    assert len(np.unique(cat["master_id"])) == len(cat) == 150
    truth = campaign.truth("ngc104")
    assert set(truth["image"].values) == set(campaign.images.query("target == 'ngc104'").image)
    np.testing.assert_array_equal(truth["star"].values, cat["master_id"])
    assert list(truth.data_vars) == list(TRUTH_VARIABLES)  # the declaration in cte.schema
    for name, (dims, dtype, units, long_name) in TRUTH_VARIABLES.items():
        assert truth[name].dims == dims == ("image", "star")
        assert truth[name].dtype == np.dtype(dtype)
        assert truth[name].attrs == {"units": units, "long_name": long_name}
    assert set(np.unique(truth["on_image"])) == {0, 1}
    assert (campaign.truth_dir / "lossmodel.json").is_file()
    doc = json.loads((campaign.truth_dir / "campaign.json").read_text())
    assert set(doc["bad_files"]) == set(campaign.bad_files)
    assert set(campaign.bad_files.values()) == {"InvalidImageError", "WrongInstrumentError"}


def test_load_campaign_round_trip(campaign):
    again = load_campaign(campaign.root)
    assert list(again.images["image"]) == list(campaign.images["image"])
    assert again.shape == campaign.shape
    assert again.loss_models["FLC"] == campaign.loss_models["FLC"]
    assert dict(again.bad_files) == dict(campaign.bad_files)


def test_uvis_layout_and_keywords(campaign):
    row, hdul = _open(campaign, campaign.images.image.iloc[0])
    with hdul:
        h0 = hdul[0].header
        assert (h0["INSTRUME"], h0["DETECTOR"]) == ("WFC3", "UVIS")
        assert h0["ROOTNAME"] == row.rootname and h0["PROPOSID"] == row.proposal
        assert h0["TARGNAME"] == "NGC-104" and h0["EXPSTART"] == pytest.approx(row.mjd)
        assert [(h.name, h.ver) for h in hdul[1:]] == [
            ("SCI", 1), ("ERR", 1), ("DQ", 1), ("SCI", 2), ("ERR", 2), ("DQ", 2)]
        assert hdul["SCI", 1].header["CCDCHIP"] == 2
        assert hdul["SCI", 2].header["CCDCHIP"] == 1
        assert hdul["SCI", 1].data.shape == campaign.shape
        assert hdul["SCI", 1].data.dtype.newbyteorder("=") == np.float32
        # the cut-out keeps its chip origin
        assert hdul["SCI", 1].header["LTV2"] == -row.origin_y


def test_pairs_put_the_same_stars_on_both_chips(campaign):
    images = campaign.images.query("target == 'ngc104' and expected_skip == ''")
    chip2 = images.query("postarg2 == 0 and ctecorr == 'FLT'").iloc[0]
    chip1 = images.query("postarg2 > 80 and ctecorr == 'FLT' and exptime == @chip2.exptime "
                         "and flash == @chip2.flash").iloc[0]
    assert (chip2.chip, chip1.chip) == (2, 1)
    truth = campaign.truth("ngc104")
    t2, t1 = truth.sel(image=chip2.image), truth.sel(image=chip1.image)
    # same rows on both chips (the dither is one chip height plus the gap), so the
    # transfers are y on chip 2 and 2051 - y on chip 1
    np.testing.assert_allclose(t1.y, t2.y, atol=0.1)
    np.testing.assert_allclose(t2.transfers, np.clip(t2.y, 0, 2051))
    np.testing.assert_allclose(t1.transfers, np.clip(2051 - t1.y, 0, 2051))


def test_truth_positions_follow_header_wcs_and_pointing_error(campaign):
    """Catalog through the header WCS, then the recorded error transform, gives truth."""
    cat = campaign.catalog("ngc104")
    truth = campaign.truth("ngc104")
    for image in campaign.images.query("target == 'ngc104'").image[:6]:
        row, hdul = _open(campaign, image)
        with hdul:
            sci = hdul["SCI", 1 if row.chip == 2 else 2]
            wcs = WCS(sci.header)
            ltv = sci.header["LTV1"], sci.header["LTV2"]
        xh, yh = wcs.all_world2pix(cat["ra"], cat["dec"], 0)
        a = np.deg2rad(row.rotation)
        dx, dy = xh - row.center_x, yh - row.center_y
        xt = row.center_x + np.cos(a) * dx - np.sin(a) * dy + row.shift_x - ltv[0]
        yt = row.center_y + np.sin(a) * dx + np.cos(a) * dy + row.shift_y - ltv[1]
        t = truth.sel(image=image)
        np.testing.assert_allclose(xt, t.x, atol=1e-6)
        np.testing.assert_allclose(yt, t.y, atol=1e-6)
        assert np.hypot(row.shift_x, row.shift_y) > 0  # there is an error to recover


def test_injected_loss_is_the_loss_model(campaign):
    truth = campaign.truth("ngc104")
    images = campaign.images.set_index("image")
    for image in truth.image.values[:8]:
        row = images.loc[image]
        t = truth.sel(image=image)
        model = DEFAULT_LOSS_MODELS[row.ctecorr]
        expected_l = model.loss(t.flux_true.values, row.mjd, row.background)
        np.testing.assert_allclose(t.loss, expected_l)
        np.testing.assert_allclose(
            t.flux_expected, t.flux_true * (1 - expected_l * t.transfers / 2048.0))
    # FLC keeps a quarter of the FLT loss
    flt = truth.sel(image=truth.image.values[0])
    flc = truth.sel(image=truth.image.values[0].replace("_flt", "_flc"))
    np.testing.assert_allclose(flc.loss, 0.25 * flt.loss, rtol=1e-12)


def test_loss_is_physically_plausible():
    flt, flc = DEFAULT_LOSS_MODELS["FLT"], DEFAULT_LOSS_MODELS["FLC"]
    faint_2015, bright_2015 = flt.loss([500.0, 50000.0], 57100.0, 2.0)
    assert 0.10 <= faint_2015 <= 0.30 and 0.01 <= bright_2015 <= 0.08
    assert flt.loss(500.0, 57700.0, 2.0) > flt.loss(500.0, 55200.0, 2.0)  # grows with time
    assert flt.loss(500.0, 57100.0, 100.0) < faint_2015  # shrinks with background
    assert flc.loss(500.0, 57100.0, 2.0) == pytest.approx(faint_2015 / 4)


def test_rendered_stars_conserve_flux_and_centre():
    x, y, f = np.array([30.3, 70.8]), np.array([40.6, 20.1]), np.array([1e4, 3e3])
    img = render_stars((100, 120), x, y, f, fwhm=1.8)
    assert img.sum() == pytest.approx(f.sum(), rel=1e-12)
    yy, xx = np.mgrid[0:100, 0:120]
    for xi, yi, fi in zip(x, y, f, strict=True):
        box = (np.abs(xx - xi) < 13) & (np.abs(yy - yi) < 13)
        w = img * box
        assert w.sum() == pytest.approx(fi, rel=1e-12)
        assert (w * xx).sum() / w.sum() == pytest.approx(xi, abs=0.01)
        assert (w * yy).sum() / w.sum() == pytest.approx(yi, abs=0.01)
        # FWHM ~1.8 px: the central pixel holds a fifth to a third of the flux
        assert 0.15 < img[round(yi), round(xi)] / fi < 0.35


def test_dq_flags_cosmic_rays_and_saturation(campaign):
    _, hdul = _open(campaign, campaign.images.image.iloc[0])
    with hdul:
        sci, dq = hdul["SCI", 1].data, hdul["DQ", 1].data
    assert (dq & 4096).any()  # cosmic rays flagged
    assert np.all(sci[(dq & 256) != 0] == FULL_WELL)
    assert not np.any(sci[(dq & 256) == 0] >= FULL_WELL)


def test_excluded_and_special_images(campaign):
    images = campaign.images
    skips = images[images.expected_skip != ""]
    assert len(skips) == 5
    binned = skips[skips.proposal == 14012].iloc[0]
    with fits.open(campaign.root / binned.path) as hdul:
        # as calwf3 writes them: in the SCI headers, not the primary
        assert "BINAXIS1" not in hdul[0].header
        assert hdul["SCI", 1].header["BINAXIS1"] == hdul["SCI", 2].header["BINAXIS2"] == 2
        assert hdul["SCI", 1].data.shape == (campaign.shape[0] // 2, campaign.shape[1] // 2)
    ci = skips[skips.proposal == 12348].iloc[0]
    with fits.open(campaign.root / ci.path) as hdul:
        assert hdul[0].header["CHINJECT"] == "CONT"
    same = images[images.target == "ngc6583"]
    assert set(same.visit) == {"10", "11"}
    for _, visit in same.groupby("visit"):
        assert visit.chip.nunique() == 1  # same-chip set
        assert sorted(np.unique(visit.orientat % 360 - visit.orientat.min())) == [0.0, 180.0]


def test_same_seed_same_data(tmp_path):
    kwargs = dict(shape=(64, 64), targets=("ngc6791",), n_epochs=1, flashes=(0,),
                  exptimes=(30.0,), ctecorr=("FLT",), include_excluded=False, include_180=False,
                  physics=FieldPhysics(n_stars=20))
    a = simulate_campaign(tmp_path / "a", seed=3, **kwargs)
    b = simulate_campaign(tmp_path / "b", seed=3, **kwargs)
    c = simulate_campaign(tmp_path / "c", seed=4, **kwargs)
    path = a.images.path.iloc[0]
    da = fits.getdata(a.root / path, "SCI", 1)
    assert np.array_equal(da, fits.getdata(b.root / path, "SCI", 1))
    assert not np.array_equal(da, fits.getdata(c.root / path, "SCI", 1))


def test_custom_loss_model_is_recorded(tmp_path):
    model = {"FLT": LossModel({"1": 0.1}), "FLC": LossModel({"1": 0.02})}
    camp = simulate_campaign(
        tmp_path / "m", seed=0, shape=(64, 64), n_epochs=1, targets=("ngc6791",), flashes=(0,),
        exptimes=(30.0,), include_excluded=False, include_180=False, loss_models=model,
        physics=FieldPhysics(n_stars=10)
    )
    assert load_campaign(camp.root).loss_models["FLC"].coefficients["1"] == 0.02
    np.testing.assert_allclose(camp.truth("ngc6791").loss.sel(
        image=camp.images.image[camp.images.ctecorr == "FLT"].iloc[0]), 0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (8, 8)}, r"shape must be \(rows, columns\) between \(16, 16\) and"),
        ({"shape": (3000, 100)}, r"shape must be \(rows, columns\) between .*\(2051, 4096\)"),
        ({"targets": ("m31",)}, "targets must be"),
        ({"filters": ("F999W",)}, "filters must be"),
        ({"ctecorr": ("RAW",)}, "ctecorr must be"),
        ({"flashes": (1.5,)}, r"flashes\[0\] must be an integer >= 0, got 1.5"),
        ({"exptimes": (0.0,)}, r"exptimes\[0\] must be > 0 \(s\), got 0.0"),
        ({"n_epochs": 0}, r"n_epochs must be an integer in \[1, 15\], got 0"),
        ({"loss_models": {"FLT": LossModel({})}}, "loss_models must give"),
    ],
)
def test_invalid_parameters_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_campaign(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x" / "data").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fwhm": -1.0}, "fwhm must be"),
        ({"pointing_error": -1.0}, "pointing_error must be"),
        ({"n_stars": 0}, "n_stars must be an integer >= 1, got 0"),
    ],
)
def test_invalid_physics_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FieldPhysics(**kwargs)


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        simulate_campaign(tmp_path / "x", shape=(32, 32), physics=FieldPhysics(n_stars=5))
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_pixel_area_map_is_written_and_applied(tmp_path):
    camp = simulate_campaign(
        tmp_path / "p", seed=1, shape=(64, 64), targets=("ngc6791",), n_epochs=1, flashes=(0,),
        exptimes=(348.0,), ctecorr=("FLT",), include_excluded=False, include_180=False, pam=True,
        physics=FieldPhysics(n_stars=15)
    )
    assert camp.pam_dir == tmp_path / "p" / "pam"
    truth = camp.truth("ngc6791")
    for chip in (1, 2):
        pam = fits.getdata(camp.pam_dir / f"UVIS{chip}wfc3_map.fits")
        assert pam.shape == (2051, 4096)
        assert 0.9 < pam.min() and pam.max() < 1.1
        image = camp.images.query("chip == @chip").image.iloc[0]
        t = truth.sel(image=image)
        on = t.on_image.values.astype(bool)
        at_star = pam[np.rint(t.y.values[on]).astype(int), np.rint(t.x.values[on]).astype(int)]
        kept = t.flux_true * (1 - t.loss * t.transfers / 2048.0)
        # smooth map: the value at the star's nearest pixel is within 1e-4 of its own
        np.testing.assert_allclose((kept / t.flux_expected).values[on], at_star, rtol=1e-4)


def test_load_campaign_needs_a_campaign(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not hold a simulated campaign"):
        load_campaign(tmp_path)


# -- overwrite: only what a previous simulation wrote -------------------------------------
_TINY = dict(shape=(32, 32), targets=("ngc6791",), n_epochs=1, flashes=(0,), exptimes=(348.0,),
             ctecorr=("FLT",), include_excluded=False, include_180=False,
             physics=FieldPhysics(n_stars=5))


def _tree_hash(root) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_overwrite_removes_only_what_the_simulation_wrote(tmp_path):
    root = tmp_path / "sim"
    first = simulate_campaign(root, seed=1, pam=True, **_TINY)
    marker = json.loads((root / ".cte-simulation.json").read_text())
    assert marker["writer"] == "cte.simulate"
    assert sorted(marker["files"]) == sorted(_tree_hash(root).keys() - {".cte-simulation.json"})
    assert first.pam_dir is not None
    (root / "notes.txt").write_text("mine")
    (root / "data" / "mine.fits.txt").write_text("also mine")
    second = simulate_campaign(root, seed=2, overwrite=True, **_TINY)
    assert (root / "notes.txt").read_text() == "mine"
    assert (root / "data" / "mine.fits.txt").read_text() == "also mine"
    assert not (root / "pam").exists()  # written by the first simulation only
    assert second.images["path"].tolist() == first.images["path"].tolist()
    assert (root / second.images["path"].iloc[0]).exists()
    again = json.loads((root / ".cte-simulation.json").read_text())
    assert "notes.txt" not in again["files"] and "data/mine.fits.txt" not in again["files"]


def test_overwrite_refuses_a_directory_without_the_marker(tmp_path):
    from cte.cli import main

    root = tmp_path / "precious"
    (root / "data").mkdir(parents=True)
    (root / "thesis.tex").write_text("years of work")
    (root / "data" / "x_flt.fits").write_bytes(b"not a simulation")
    before = _tree_hash(root)
    with pytest.raises(FileExistsError, match=r"holds no simulation marker.*refuses to delete"):
        simulate_campaign(root, overwrite=True, **_TINY)
    assert _tree_hash(root) == before
    assert main(["simulate", "--out", str(root), "--overwrite", "--shape", "32", "32",
                 "--n-stars", "5", "--epochs", "1"]) == 1
    assert _tree_hash(root) == before
    # a marker that is not the simulator's own is refused too
    (root / ".cte-simulation.json").write_text('{"files": ["thesis.tex"]}')
    before = _tree_hash(root)
    with pytest.raises(FileExistsError, match="not a marker written by cte.simulate"):
        simulate_campaign(root, overwrite=True, **_TINY)
    assert _tree_hash(root) == before


def test_overwrite_never_leaves_the_directory(tmp_path):
    root = tmp_path / "sim"
    simulate_campaign(root, seed=1, **_TINY)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    marker = root / ".cte-simulation.json"
    doc = json.loads(marker.read_text())
    doc["files"] += ["../outside.txt", str(outside)]
    marker.write_text(json.dumps(doc))
    simulate_campaign(root, seed=1, overwrite=True, **_TINY)
    assert outside.read_text() == "keep"


def test_read_noise_follows_each_quadrants_amplifier(campaign):
    """ERR^2 = READNSEx^2 + expected charge: the faintest pixels of each half of a chip
    give the read noise its header announces for that amplifier (A, B on chip 1 and
    C, D on chip 2, split at chip column 2048)."""
    row = campaign.images.query("expected_skip == '' and ctecorr == 'FLT'").iloc[0]
    with fits.open(campaign.root / row.path) as hdul:
        primary = hdul[0].header
        for chip, amps in ((1, "AB"), (2, "CD")):
            extver = 1 if chip == 2 else 2
            err = hdul["ERR", extver].data.astype(float)
            x0 = -hdul["SCI", extver].header["LTV1"]
            columns = np.arange(err.shape[1]) + x0
            assert (columns < 2048).any() and (columns >= 2048).any()  # both amplifiers
            for amp, side in zip(amps, (columns < 2048, columns >= 2048), strict=True):
                floor = np.min(err[:, side] ** 2) - row.background
                assert floor == pytest.approx(primary[f"READNSE{amp}"] ** 2, rel=2e-3)


def test_field_physics_is_one_validated_object(tmp_path):
    """The physics is given only as a cte.FieldPhysics (validated once), never as keywords."""
    import cte

    kw = {"seed": 3, "shape": (64, 64), "targets": ("ngc104",), "n_epochs": 1,
          "flashes": (12,), "exptimes": (348.0,), "ctecorr": ("FLT",),
          "include_excluded": False, "include_180": False}
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'n_stars'"):
        simulate_campaign(tmp_path / "c", n_stars=30, **kw)
    with pytest.raises(TypeError, match="physics must be a FieldPhysics, got dict"):
        simulate_campaign(tmp_path / "c", physics={"n_stars": 30}, **kw)
    with pytest.raises(TypeError, match=r"exptimes\[0\] must be a number, got '348'"):
        simulate_campaign(tmp_path / "c", **{**kw, "exptimes": ["348"]})
    with pytest.raises(ValueError, match="psf must be one of"):
        cte.FieldPhysics(psf="airy")
    with pytest.raises(ValueError, match=r"flux_range low must be > 0 \(e-\), got 0.0"):
        cte.FieldPhysics(flux_range=(0.0, 10.0))
    assert not (tmp_path / "c").exists()
