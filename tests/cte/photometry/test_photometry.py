"""Aperture photometry against independent computations and the simulator's truth."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.table import Table
from scipy.spatial import cKDTree

from cte import CatalogError
from cte import flags as F
from cte.datasets import FieldPhysics
from cte.io import ImageSelection
from cte.io._geometry import CHIP_NX, CHIP_NY
from cte.photometry._measure import annulus_background
from cte.photometry.batch import measure_photometry
from cte.photometry.store import PhotometryStore
from tests._cluster import NO_DASHBOARD


def _field_hdus(path, chip):
    """SCI, DQ arrays and LTV offsets of the chip holding the field."""
    with fits.open(path) as hdul:
        extver = 1 if chip == 2 else 2
        sci = hdul["SCI", extver].data.astype(float)
        dq = hdul["DQ", extver].data.astype(int)
        ltv = hdul["SCI", extver].header["LTV1"], hdul["SCI", extver].header["LTV2"]
    return sci, dq, ltv


def _isolated(truth_image, *, radius=20.0, ratio=1e-3):
    """Stars with no true neighbour within *radius* px carrying *ratio* of their flux."""
    x, y, f = truth_image.x.values, truth_image.y.values, truth_image.flux_expected.values
    alone = np.ones(x.size, bool)
    for i, j in cKDTree(np.column_stack([x, y])).query_pairs(radius):
        alone[i] &= f[j] < ratio * f[i]
        alone[j] &= f[i] < ratio * f[j]
    return alone


def _supersampled_sum(data, xc, yc, r, ss=40):
    """Aperture sum by sub-sampling every pixel ss x ss times (independent of photutils)."""
    x0, x1 = int(np.floor(xc - r)) - 1, int(np.ceil(xc + r)) + 2
    y0, y1 = int(np.floor(yc - r)) - 1, int(np.ceil(yc + r)) + 2
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    yy, xx = np.mgrid[y0:y1, x0:x1]
    px = xx[:, :, None, None] + sub[None, None, None, :]
    py = yy[:, :, None, None] + sub[None, None, :, None]
    frac = ((px - xc) ** 2 + (py - yc) ** 2 <= r * r).mean(axis=(2, 3))
    return float((frac * data[y0:y1, x0:x1]).sum())


@pytest.fixture(scope="module")
def store(measured):
    return PhotometryStore(measured.store, mode="r")


def test_every_usable_image_is_measured(measured, campaign):
    usable = campaign.images[campaign.images.expected_skip == ""]
    assert set(measured.measured["image"]) == set(usable["image"])
    assert (measured.measured["wcs_residual_rms"] < 0.3).all()
    assert sorted(measured.keys) == ["ngc104/F502N/flash0", "ngc104/F502N/flash12",
                                     "ngc6583/F502N/flash0"]


def test_aperture_sums_match_a_supersampled_numpy_sum(store, campaign):
    """Acceptance: photutils exact sums agree with a 40x40-supersampled sum to 0.1%."""
    images = campaign.images.set_index("image")
    checked = 0
    for key in store.keys():
        ds = store.read(key)
        for image in ds.image.values[:3]:
            row = images.loc[image]
            sci, _, ltv = _field_hdus(campaign.root / row.path, row.chip)
            d = ds.sel(image=image)
            truth = campaign.truth(row.target).sel(image=image, star=d.star)
            good = _isolated(truth) & (truth.flux_expected.values > 2000) & (d.flags == 0)
            for star in d.star.values[good.values][:4]:
                s = d.sel(star=star)
                xi, yi = float(s.x) + ltv[0], float(s.y) + ltv[1]
                for r in d.aperture.values:
                    ours = float(s.flux.sel(aperture=r)) + float(s.background) * np.pi * r**2
                    ref = _supersampled_sum(sci, xi, yi, r)
                    assert ours == pytest.approx(ref, rel=1e-3), (image, star, r)
                    checked += 1
    assert checked >= 30


def _measured_with_truth(measured, campaign):
    """Each stored image's photometry with the simulator's truth of its stars."""
    store = PhotometryStore(measured.store, mode="r")
    images = campaign.images.set_index("image")
    for key in store.keys():
        ds = store.read(key)
        for image in ds.image.values:
            d = ds.sel(image=image)
            target = images.loc[image, "target"]
            yield d, campaign.truth(target).sel(image=image, star=d.star)


def test_bright_isolated_stars_recover_their_true_flux(flat_measured, flat_campaign):
    """Acceptance: no injected loss, background subtracted: flux / true flux = 1 +- 0.5%."""
    ratios, pulls = [], []
    for d, truth in _measured_with_truth(flat_measured, flat_campaign):
        np.testing.assert_array_equal(truth.loss, 0.0)
        bad = F.SATURATED | F.COSMIC_RAY | F.NEAR_EDGE | F.BAD_PIXEL
        good = (_isolated(truth) & (truth.flux_true.values > 20000)
                & ((d.flags.values & bad) == 0))
        flux = d.flux.sel(aperture=10.0).values[good]
        true = truth.flux_true.values[good]
        ratios.extend(flux / true)
        pulls.extend((flux - true) / d.flux_err.sel(aperture=10.0).values[good])
    ratios, pulls = np.array(ratios), np.array(pulls)
    assert ratios.size >= 10
    assert abs(np.median(ratios) - 1) < 0.005, np.round(ratios, 4)
    assert abs(np.mean(ratios) - 1) < 0.005
    assert np.all(np.abs(pulls) < 4.5), np.round(pulls, 2)


def test_flux_errors_describe_the_scatter(flat_measured, flat_campaign):
    """Pulls (flux - expected) / flux_err of isolated stars have unit spread."""
    pulls = []
    for d, truth in _measured_with_truth(flat_measured, flat_campaign):
        good = _isolated(truth) & ((d.flags.values & ~F.CROWDED) == 0)
        good &= truth.flux_true.values < 0.8 * 63000 / 0.2  # far from saturation
        expected = truth.flux_expected.values * 0.9998  # PSF light beyond r = 10 px
        pull = (d.flux.sel(aperture=10.0).values - expected) / d.flux_err.sel(
            aperture=10.0).values
        pulls.extend(pull[good])
    pulls = np.array(pulls)
    assert pulls.size >= 30
    assert 0.7 < np.std(pulls) < 1.4
    assert abs(np.median(pulls)) < 0.5


def test_background_is_the_sigma_clipped_annulus_median(store, campaign, config):
    ds = store.read("ngc104/F502N/flash12")
    image = ds.image.values[0]
    row = campaign.images.set_index("image").loc[image]
    sci, dq, ltv = _field_hdus(campaign.root / row.path, row.chip)
    d = ds.sel(image=image)
    r_in, r_out = config.photometry.annulus
    yy, xx = np.mgrid[0 : sci.shape[0], 0 : sci.shape[1]]
    masked = (dq & config.photometry.dq_mask) != 0
    for star in d.star.values[(d.flags.values & F.NEAR_EDGE) == 0][:10]:
        s = d.sel(star=star)
        r = np.hypot(xx - (float(s.x) + ltv[0]), yy - (float(s.y) + ltv[1]))
        values = sci[(r >= r_in) & (r < r_out) & ~masked]
        _, median, _ = sigma_clipped_stats(values, sigma=3.0, maxiters=5, cenfunc="median",
                                           stdfunc="std")
        assert float(s.background) == pytest.approx(median, abs=1e-9)


def test_positions_and_transfers(store, campaign):
    checked = 0
    for key in store.keys():
        ds = store.read(key)
        for image in ds.image.values:
            d = ds.sel(image=image)
            row = campaign.images.set_index("image").loc[image]
            truth = campaign.truth(row.target).sel(image=image, star=d.star)
            measured = np.isfinite(d.x.values)
            chip = int(d.chip)
            expected = d.y.values if chip == 2 else CHIP_NY - d.y.values
            np.testing.assert_allclose(d.transfers.values[measured], expected[measured])
            good = _isolated(truth) & (truth.flux_expected.values > 5000) & measured
            err = np.hypot(d.x.values - truth.x.values, d.y.values - truth.y.values)[good]
            assert err.size == 0 or np.sqrt(np.mean(err**2)) < 0.05
            checked += err.size
            assert (d.x.values[measured] >= 0).all() and (d.x.values[measured] < CHIP_NX).all()
    assert checked >= 20


def test_flux_masked_removes_cosmic_rays(flat_measured, flat_campaign, store, campaign):
    checked = 0
    for summary, camp in ((flat_measured, flat_campaign), (None, campaign)):
        st = store if summary is None else PhotometryStore(summary.store, mode="r")
        images = camp.images.set_index("image")
        for key in st.keys():
            ds = st.read(key)
            clean = (ds.flags.values & (F.COSMIC_RAY | F.BAD_PIXEL)) == 0
            same = (ds.flux_masked.values == ds.flux.values) | (
                np.isnan(ds.flux_masked.values) & np.isnan(ds.flux.values))
            # stars without masked pixels in the largest aperture: identical fluxes
            assert same[clean].all()
            for i, image in enumerate(ds.image.values):
                d = ds.isel(image=i)
                truth = camp.truth(images.loc[image, "target"]).sel(image=image, star=d.star)
                hit = ((d.flags.values & F.COSMIC_RAY) != 0) & _isolated(truth)
                hit &= (d.flags.values & (F.NEAR_EDGE | F.SATURATED)) == 0
                f, fm = d.flux.sel(aperture=3.0).values, d.flux_masked.sel(aperture=3.0).values
                changed = hit & (np.abs(fm - f) > 3 * d.flux_err.sel(aperture=3.0).values)
                expected = truth.flux_expected.values * 0.95  # ~ r = 3 px encircled energy
                # the masked flux is closer to the truth wherever a cosmic ray mattered
                assert np.all(np.abs(fm - expected)[changed] < np.abs(f - expected)[changed])
                checked += int(changed.sum())
    assert checked >= 3


def test_near_edge_and_off_chip(store):
    ds = store.read("ngc104/F502N/flash0")
    flags, flux = ds.flags.values, ds.flux.values
    edge = (flags & F.NEAR_EDGE) != 0
    assert edge.any()
    # an aperture that does not fit is NaN; the smaller ones of edge stars may be kept
    assert np.isnan(flux[..., -1][edge]).any()
    assert np.isfinite(flux[..., 0][edge]).any()
    assert np.isfinite(flux[..., -1][(flags & (F.NEAR_EDGE | F.OFF_CHIP | F.NO_BACKGROUND))
                                     == 0]).all()
    off = (flags & F.OFF_CHIP) != 0
    assert np.isnan(flux[off]).all() and np.isnan(ds.x.values[off]).all()


def test_saturated_stars_are_flagged(flat_measured, flat_campaign, config):
    store = PhotometryStore(flat_measured.store, mode="r")
    ds = store.read("ngc104/F606W/flash12")  # four times the flux of F502N
    sat = (ds.flags.values & F.SATURATED) != 0
    assert sat.any()
    images = flat_campaign.images.set_index("image")
    for i, image in enumerate(ds.image.values):
        _, dq, ltv = _field_hdus(flat_campaign.root / images.loc[image, "path"],
                                 images.loc[image, "chip"])
        d = ds.isel(image=i)
        for j in np.flatnonzero(sat[i]):
            x, y = float(d.x[j]) + ltv[0], float(d.y[j]) + ltv[1]
            box = dq[round(y) - 11 : round(y) + 12, round(x) - 11 : round(x) + 12]
            assert (box & config.photometry.saturation_dq).any()


def test_crowded_flag_matches_catalog_neighbours(store, campaign, config):
    ds = store.read("ngc104/F502N/flash12")
    d = ds.isel(image=0)
    cat = campaign.catalog("ngc104")
    truth = campaign.truth("ngc104").sel(image=str(d.image.values))
    pos = np.column_stack([truth.x.values, truth.y.values])
    flux = np.asarray(cat["flux"])
    ids = np.asarray(cat["master_id"])
    index = {s: k for k, s in enumerate(ids)}
    radius, ratio = config.photometry.crowding_radius, config.photometry.crowding_flux_ratio
    agree = 0
    for j, star in enumerate(d.star.values):
        k = index[star]
        dist = np.hypot(*(pos - pos[k]).T)
        neighbours = (dist < radius - 0.2) & (dist > 0) & (flux >= ratio * flux[k])
        far = (dist < radius + 0.2) & (dist > 0) & (flux >= ratio * flux[k])
        crowded = bool(d.flags.values[j] & F.CROWDED)
        if neighbours.any():
            assert crowded
        if not far.any():
            assert not crowded
        agree += 1
    assert agree == d.sizes["star"]


def test_excluded_visits_skipped_with_reason_logged(campaign, tmp_path, caplog):
    """Acceptance: skipped with their reason logged; bad files do not stop the others."""
    with caplog.at_level(logging.INFO):
        summary = measure_photometry(campaign.data_dir, campaign.catalogs_dir,
                                     tmp_path / "store",
                                     selection=ImageSelection(targets=["ngc6583"], ctecorr=["FLC"]))
    expected = campaign.images[campaign.images.expected_skip != ""]
    skipped = summary.skipped.set_index("image")
    for row in expected.itertuples():
        assert row.expected_skip in skipped.loc[row.image, "reason"]
        assert skipped.loc[row.image, "category"] == "excluded"
        assert any(row.image in r.message and row.expected_skip in r.message
                   for r in caplog.records)
    unreadable = summary.skipped[summary.skipped.category == "unreadable"]
    assert len(unreadable) == len(campaign.bad_files)
    assert any("WrongInstrumentError" not in r.message and "INSTRUME=ACS" in r.message
               for r in caplog.records if r.levelno == logging.WARNING)
    # the selection was honoured and the rest measured
    images = campaign.images
    want = images[(images.target == "ngc6583") & (images.ctecorr == "FLC")]
    assert set(summary.measured["image"]) == set(want["image"])
    assert summary.keys == ["ngc6583/F502N/flash0"]
    assert any("no pixel-area maps" in r.message for r in caplog.records)


def test_a_failing_image_does_not_stop_the_others(campaign, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(campaign.data_dir / "12692", data)
    victim = sorted(data.glob("*_flt.fits"))[0]
    with fits.open(victim, mode="update") as hdul:
        for h in hdul[1:]:
            if h.name == "SCI":
                h.header["CRVAL1"] += 0.05  # a pointing error of minutes of arc
    summary = measure_photometry(data, campaign.catalogs_dir, tmp_path / "store")
    failed = summary.skipped[summary.skipped.category == "failed"]
    assert list(failed["path"]) == [str(victim)]
    assert failed["reason"].str.contains("cannot align|alignment failed").all()
    assert len(summary.measured) == len(list(data.glob("*.fits"))) - 1


def test_rerun_reuses_or_replaces(campaign, tmp_path):
    data = campaign.data_dir / "12692"
    store_dir = tmp_path / "store"
    one = {"selection": ImageSelection(ctecorr=["FLT"], visits=["10"])}
    first = measure_photometry(data, campaign.catalogs_dir, store_dir, apertures=[3.0, 5.0],
                               **one)
    assert len(first.measured) == 4
    again = measure_photometry(data, campaign.catalogs_dir, store_dir, apertures=[3.0], **one)
    assert len(again.measured) == 0 and len(again.reused) == len(first.measured)
    store = PhotometryStore(store_dir)
    before = store.read(first.keys[0])
    redo = measure_photometry(data, campaign.catalogs_dir, store_dir, apertures=[3.0, 5.0],
                              overwrite=True, scheduler="synchronous", **one)
    after = store.read(first.keys[0])
    assert len(redo.measured) == len(first.measured)
    assert after.sizes == before.sizes  # replaced, not appended
    np.testing.assert_array_equal(after.flux.values, before.flux.values)  # deterministic
    more = measure_photometry(data, campaign.catalogs_dir, store_dir, apertures=[10.0], **one)
    assert len(more.measured) == len(first.measured)  # 10 px was not stored yet
    assert list(store.read(first.keys[0]).aperture.values) == [3.0, 5.0, 10.0]


def test_pixel_area_maps_scale_the_fluxes(campaign, tmp_path, caplog):
    pam = tmp_path / "pam"
    pam.mkdir()
    for chip, value in ((1, 1.05), (2, 0.95)):
        fits.PrimaryHDU(np.full((CHIP_NY, CHIP_NX), value, np.float32)).writeto(
            pam / f"UVIS{chip}wfc3_map.fits")
    data = campaign.data_dir / "12692"
    flc11 = ImageSelection(ctecorr=["FLC"], visits=["11"])
    plain = measure_photometry(data, campaign.catalogs_dir, tmp_path / "a", selection=flc11)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        scaled = measure_photometry(data, campaign.catalogs_dir, tmp_path / "b",
                                    selection=flc11, pam_dir=pam)
    assert not any("no pixel-area maps" in r.message for r in caplog.records)
    a = PhotometryStore(plain.store).read(plain.keys[0])
    b = PhotometryStore(scaled.store).read(scaled.keys[0])
    factor = np.where(a.chip.values == 1, np.float32(1.05), np.float32(0.95))
    # the aperture sums of bright stars scale with the map (rounding moves faint
    # detections, and so the fitted positions, by a few thousandths of a pixel)
    area = np.pi * a.aperture.values[-1] ** 2
    sums_a = a.flux.values[..., -1] + a.background.values * area
    sums_b = b.flux.values[..., -1] + b.background.values * area
    bright = sums_a > 10000
    assert bright.sum() >= 10
    ratio = (sums_b / sums_a)[bright]
    np.testing.assert_allclose(ratio, np.broadcast_to(factor[:, None], sums_a.shape)[bright],
                               rtol=1e-4)
    assert (b.pam_corrected.values == 1).all() and (a.pam_corrected.values == 0).all()
    with pytest.raises(FileNotFoundError, match="UVIS1wfc3_map.fits"):
        measure_photometry(data, campaign.catalogs_dir, tmp_path / "c", pam_dir=tmp_path)


def test_bad_input_fails_before_anything_is_written(campaign, tmp_path):
    cats = tmp_path / "cats"
    cats.mkdir()
    shutil.copy(campaign.catalogs_dir / "ngc104.ecsv", cats)
    with pytest.raises(CatalogError, match=r"ngc6583\.ecsv does not exist"):
        measure_photometry(campaign.data_dir, cats, tmp_path / "s1")
    assert not (tmp_path / "s1").exists()
    Table({"a": [1, 2]}).write(cats / "ngc6583.ecsv", format="ascii.ecsv")
    with pytest.raises(CatalogError, match=r"lacks column\(s\) \['master_id', 'ra', 'dec'\]"):
        measure_photometry(campaign.data_dir, cats, tmp_path / "s1")
    for kwargs, match in (({"apertures": [-3.0]},
                           r"apertures\[0\] must be > 0 \(pixel\), got -3.0"),
                          ({"apertures": [30.0]}, "must be >= the largest aperture 30.0"),
                          ({"scheduler": "gpu"}, "scheduler must be"),
                          ({"num_workers": 0}, "num_workers must be")):
        with pytest.raises(ValueError, match=match):
            measure_photometry(campaign.data_dir, campaign.catalogs_dir, tmp_path / "s2",
                               **kwargs)
    assert not (tmp_path / "s2").exists()


@pytest.mark.slow
def test_distributed_client_gives_the_same_photometry(campaign, tmp_path):
    distributed = pytest.importorskip("distributed")
    data = campaign.data_dir / "12692"
    local = measure_photometry(data, campaign.catalogs_dir, tmp_path / "a",
                               selection=ImageSelection(ctecorr=["FLC"]))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  **NO_DASHBOARD) as cluster, \
            distributed.Client(cluster) as client:
        remote = measure_photometry(data, campaign.catalogs_dir, tmp_path / "b",
                                    selection=ImageSelection(ctecorr=["FLC"]), client=client)
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    a = PhotometryStore(local.store).read(local.keys[0])
    b = PhotometryStore(remote.store).read(remote.keys[0])
    np.testing.assert_array_equal(a.flux.values, b.flux.values)
    np.testing.assert_array_equal(a.flags.values, b.flags.values)
    assert sum(executed.values()) >= len(remote.measured)  # the tasks ran on the cluster


# -- edge cases pinned (issue 15) ---------------------------------------------------------
def test_pam_cutout_is_taken_at_the_ltv_origin(tmp_path):
    """A map whose value encodes its own position: the cut-out must start at -LTV."""
    from cte import InvalidImageError
    from cte.photometry._pam import pam_cutout

    yy, xx = np.mgrid[0:CHIP_NY, 0:CHIP_NX]
    path = tmp_path / "UVIS2wfc3_map.fits"
    fits.PrimaryHDU((1.0 + yy / 1e4 + xx / 1e6).astype(np.float32)).writeto(path)
    cut = pam_cutout(path, (30, 40), (-1000.0, -500.0), "image.fits")
    sub_y, sub_x = np.mgrid[500:530, 1000:1040]
    np.testing.assert_allclose(cut, 1.0 + sub_y / 1e4 + sub_x / 1e6, rtol=2e-7)
    assert cut[0, 0] == pytest.approx(1.0 + 500 / 1e4 + 1000 / 1e6, rel=2e-7)
    with pytest.raises(InvalidImageError, match=r"image\.fits: image of shape \(30, 40\) at "
                                                 r"chip origin \(4070\.0, 0\.0\)"):
        pam_cutout(path, (30, 40), (-4070.0, 0.0), "image.fits")


@pytest.fixture(scope="module")
def pam_campaign(tmp_path_factory):
    """A cut-out far from the chip origin with the simulator's varying pixel-area map."""
    from cte.datasets.simulate import simulate_campaign

    return simulate_campaign(
        tmp_path_factory.mktemp("pamsim") / "sim", seed=8, shape=(128, 128), targets=("ngc6791",),
        n_epochs=1, flashes=(12,), exptimes=(348.0,), ctecorr=("FLT",), include_excluded=False,
        include_180=False, pam=True,
        physics=FieldPhysics(n_stars=60, flux_range=(3000.0, 100000.0))
    )


def test_varying_pixel_area_map_is_applied_at_each_stars_chip_position(pam_campaign,
                                                                        tmp_path):
    """Bright stars' aperture sums scale by the map at their full-chip position.

    The cut-outs lie ~900-1000 rows and ~2000 columns from the chip origin, where
    the map differs from its value at the origin by 1-2 %: a cut-out taken at the
    image origin instead of -LTV would be off by that much.
    """
    camp = pam_campaign
    assert (camp.images["origin_x"] > 1000).all() and (camp.images["origin_y"] > 500).all()
    plain = measure_photometry(camp.data_dir, camp.catalogs_dir, tmp_path / "a")
    scaled = measure_photometry(camp.data_dir, camp.catalogs_dir, tmp_path / "b",
                                pam_dir=camp.pam_dir)
    a = PhotometryStore(plain.store).read(plain.keys[0])
    b = PhotometryStore(scaled.store).read(scaled.keys[0])
    area = np.pi * a.aperture.values[-1] ** 2
    checked = 0
    for i, chip in enumerate(a.chip.values):
        pam = fits.getdata(camp.pam_dir / f"UVIS{int(chip)}wfc3_map.fits").astype(float)
        sums_a = a.flux.values[i, :, -1] + a.background.values[i] * area
        sums_b = b.flux.values[i, :, -1] + b.background.values[i] * area
        bright = (sums_a > 10000) & np.isfinite(sums_b)
        xs, ys = a.x.values[i, bright], a.y.values[i, bright]  # full-chip coordinates
        at_star = pam[np.rint(ys).astype(int), np.rint(xs).astype(int)]
        np.testing.assert_allclose(sums_b[bright] / sums_a[bright], at_star, rtol=3e-4)
        # and not the map at the image (cut-out) position
        row = camp.images.set_index("image").loc[a.image.values[i]]
        at_image = pam[np.rint(ys - row.origin_y).astype(int),
                       np.rint(xs - row.origin_x).astype(int)]
        assert np.all(np.abs(at_image / at_star - 1) > 3e-3)
        checked += int(bright.sum())
    assert checked >= 20


def test_saturation_flag_is_exact_in_both_directions(flat_measured, flat_campaign, config):
    """Flagged iff a saturated DQ pixel lies within reach of the largest aperture.

    Reach: pixel centre within r_max + sqrt(1/2) px of the star (any pixel the
    aperture touches).  Checked over every measured star, so a star next to a
    saturated one but out of reach must stay unflagged; and every star with a
    full-well pixel in its core must be flagged.
    """
    store = PhotometryStore(flat_measured.store, mode="r")
    r_max = max(config.photometry.apertures)
    reach = r_max + np.sqrt(0.5)
    images = flat_campaign.images.set_index("image")
    n_flagged = n_clear = n_near = 0
    for key in store.keys():
        ds = store.read(key)
        for i, image in enumerate(ds.image.values):
            sci, dq, ltv = _field_hdus(flat_campaign.root / images.loc[image, "path"],
                                       images.loc[image, "chip"])
            sat_y, sat_x = np.nonzero(dq & config.photometry.saturation_dq)
            d = ds.isel(image=i)
            measured = np.isfinite(d.x.values)
            x = d.x.values[measured] + ltv[0]
            y = d.y.values[measured] + ltv[1]
            flagged = (d.flags.values[measured] & F.SATURATED) != 0
            if sat_x.size:
                dist = np.hypot(x[:, None] - sat_x[None, :], y[:, None] - sat_y[None, :])
                nearest = dist.min(axis=1)
            else:
                nearest = np.full(x.size, np.inf)
            clear = np.abs(nearest - reach) > 1e-6
            np.testing.assert_array_equal(flagged[clear], (nearest <= reach)[clear])
            # a full-well pixel within 1.5 px of the centre: the star itself saturated
            yy, xx = np.mgrid[0:sci.shape[0], 0:sci.shape[1]]
            full = np.flatnonzero(sci >= 63000.0)
            if full.size:
                core = np.hypot(x[:, None] - xx.ravel()[full][None, :],
                                y[:, None] - yy.ravel()[full][None, :]).min(axis=1) <= 1.5
                assert flagged[core].all()
            n_flagged += int(flagged.sum())
            n_clear += int((~flagged).sum())
            n_near += int((~flagged & (nearest <= reach + 10)).sum())
    assert n_flagged >= 3 and n_clear >= 20
    assert n_near >= 1  # unflagged stars close to saturated pixels were checked


def test_saturated_pixel_just_inside_or_outside_the_aperture_reach(flat_measured, flat_campaign,
                                                                   config, tmp_path):
    """Variant of a simulated image: a DQ-saturated pixel placed by hand 10.1-10.7 px
    from one unflagged star (within reach of the 10 px aperture: flagged) and
    10.75-11.5 px from another (out of reach: not flagged)."""
    store = PhotometryStore(flat_measured.store, mode="r")
    ds = store.read("ngc104/F502N/flash12")
    d = ds.isel(image=0)
    row = flat_campaign.images.set_index("image").loc[str(d.image.values)]
    source = flat_campaign.root / row.path
    _, dq, ltv = _field_hdus(source, row.chip)
    x = d.x.values + ltv[0]
    y = d.y.values + ltv[1]
    ok = np.isfinite(x) & (d.flags.values == 0)
    reach = max(config.photometry.apertures) + np.sqrt(0.5)
    placed = {}
    for i in np.flatnonzero(ok):  # a handful of stars
        for want, (lo, hi) in (("inside", (10.1, reach - 0.01)), ("outside", (reach + 0.04,
                                                                               11.5))):
            if want in placed or i in [v[0] for v in placed.values()]:
                continue
            for dx in range(8, 13):
                px, py = int(np.rint(x[i] + dx)), int(np.rint(y[i]))
                dist = np.hypot(px - x[i], py - y[i])
                clear = np.hypot(px - x, py - y)[np.arange(x.size) != i]
                # the pixel is out of reach of every other star
                if (lo < dist < hi and np.all(np.nan_to_num(clear, nan=99) > reach + 0.1)
                        and 0 <= px < dq.shape[1]):
                    placed[want] = (i, px, py)
                    break
        if len(placed) == 2:
            break
    assert set(placed) == {"inside", "outside"}
    variant = tmp_path / "data" / source.name
    variant.parent.mkdir()
    with fits.open(source) as hdul:
        extver = 1 if row.chip == 2 else 2
        # full-well (256) out of reach of one star; A-to-D saturation (2048), the
        # configuration's other saturation bit, within reach of the other
        for bit, (_, px, py) in zip((2048, 256), (placed["inside"], placed["outside"]),
                                    strict=True):
            hdul["DQ", extver].data[py, px] |= bit
        hdul.writeto(variant)
    out = measure_photometry(variant.parent, flat_campaign.catalogs_dir, tmp_path / "s",
                             selection=ImageSelection(ctecorr=["FLT"]))
    m = PhotometryStore(out.store).read("ngc104/F502N/flash12").isel(image=0)
    i_in, i_out = placed["inside"][0], placed["outside"][0]
    assert m.star.values[i_in] == d.star.values[i_in]
    np.testing.assert_allclose(m.x.values[[i_in, i_out]], d.x.values[[i_in, i_out]])
    assert m.flags.values[i_in] & F.SATURATED
    assert not m.flags.values[i_out] & F.SATURATED


def test_annulus_background_refuses_a_clipping_threshold_of_zero():
    image, mask = np.ones((20, 20)), np.zeros((20, 20), bool)
    with pytest.raises(ValueError, match="sigma must be > 0, got 0"):
        annulus_background(image, mask, [10.0], [10.0], r_in=2.0, r_out=4.0, sigma=0)
    with pytest.raises(TypeError, match="sigma must be a number, got None"):
        annulus_background(image, mask, [10.0], [10.0], r_in=2.0, r_out=4.0, sigma=None)
