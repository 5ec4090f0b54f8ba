"""WCS alignment: detection, offset voting, matching, the similarity fit, and recovery of
the simulator's injected pointing error."""

from __future__ import annotations

import numpy as np
import pytest

from cte import AlignmentError
from cte.datasets._render import render_stars
from cte.io.images import read_chip, scan_images, select_images
from cte.photometry._fill import fill_masked
from cte.photometry.align import (
    Alignment,
    align_to_catalog,
    detect_stars,
    estimate_offset,
    fit_rigid,
    match_nearest,
)


def _transform(x, y, *, center, shift, angle, scale=1.0):
    a, b = scale * np.cos(np.deg2rad(angle)), scale * np.sin(np.deg2rad(angle))
    dx, dy = x - center[0], y - center[1]
    return center[0] + a * dx - b * dy + shift[0], center[1] + b * dx + a * dy + shift[1]


def test_fit_rigid_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 500, 40), rng.uniform(0, 300, 40)
    center = (249.5, 149.5)
    u, v = _transform(x, y, center=center, shift=(2.5, -1.25), angle=0.03)
    u[:3] += 5.0  # outliers are clipped
    (theta, tx, ty), used = fit_rigid(x, y, u, v, center=center)
    assert not used[:3].any() and used[3:].all()
    assert np.degrees(theta) == pytest.approx(0.03, abs=1e-9)
    assert (tx, ty) == pytest.approx((2.5, -1.25), abs=1e-9)


def test_fit_rigid_is_the_weighted_least_squares_solution():
    """Compare with a brute-force minimisation of the weighted squared residuals."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 200, 30), rng.uniform(0, 200, 30)
    center = (99.5, 99.5)
    u, v = _transform(x, y, center=center, shift=(0.7, 1.9), angle=-0.05)
    u, v = u + rng.normal(0, 0.05, 30), v + rng.normal(0, 0.05, 30)
    w = rng.uniform(0.5, 2.0, 30)
    (theta, tx, ty), _ = fit_rigid(x, y, u, v, center=center, weights=w, clip_sigma=100)

    def cost(p):
        xm, ym = _transform(x, y, center=center, shift=p[1:], angle=np.degrees(p[0]))
        return np.sum(w * ((xm - u) ** 2 + (ym - v) ** 2))

    best = minimize(cost, [0.0, 0.0, 0.0], method="Nelder-Mead",
                    options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000}).x
    np.testing.assert_allclose([theta, tx, ty], best, atol=1e-6)
    with pytest.raises(ValueError, match="weights must be positive"):
        fit_rigid(x, y, u, v, center=center, weights=np.zeros(30))


def test_alignment_apply_matches_definition():
    al = Alignment(shift_x=1.0, shift_y=-2.0, rotation=90.0, center=(10.0, 10.0),
                   residual_rms=0.0, n_matched=0, n_detected=0)
    x, y = al.apply(np.array([11.0]), np.array([10.0]))
    np.testing.assert_allclose([x[0], y[0]], [10.0 + 1.0, 11.0 - 2.0], atol=1e-12)


def test_match_nearest_is_unambiguous():
    x1, y1 = np.array([0.0, 10.0, 20.0, 30.0]), np.zeros(4)
    x2, y2 = np.array([0.2, 10.1, 10.5, 40.0, 20.3]), np.zeros(5)
    i1, i2 = match_nearest(x1, y1, x2, y2, radius=1.0)
    # 10.0 has two candidates within 1 px: dropped; 30.0 has none
    assert list(zip(i1, i2, strict=True)) == [(0, 0), (2, 4)]


def test_estimate_offset_by_voting():
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 200, 60), rng.uniform(0, 200, 60)
    xd, yd = x[:40] + 7.3, y[:40] - 4.6
    xd = np.concatenate([xd, rng.uniform(0, 200, 15)])  # spurious detections
    yd = np.concatenate([yd, rng.uniform(0, 200, 15)])
    dx, dy, votes = estimate_offset(xd, yd, x, y, max_offset=20)
    assert (dx, dy) == pytest.approx((7.3, -4.6), abs=1e-9)
    assert votes >= 30


def test_detect_stars_finds_the_bright_stars():
    rng = np.random.default_rng(3)
    shape = (120, 160)
    x, y = rng.uniform(10, 150, 25), rng.uniform(10, 110, 25)
    f = rng.uniform(3000, 30000, 25)
    keep = np.ones(25, bool)
    d = np.hypot(x[:, None] - x, y[:, None] - y) + np.eye(25) * 99
    keep &= d.min(axis=1) > 6
    img = render_stars(shape, x, y, f) + 10.0 + rng.normal(0, 3, shape)
    xd, yd, peak = detect_stars(img, threshold=30.0, n_brightest=100, background=10.0)
    i, j = match_nearest(x[keep], y[keep], xd, yd, radius=0.5)
    assert len(i) == keep.sum()
    err = np.hypot(x[keep][i] - xd[j], y[keep][i] - yd[j])
    assert np.sqrt(np.mean(err**2)) < 0.1
    assert (peak > 30).all()


@pytest.fixture(scope="module")
def field_images(campaign, config):
    scan = scan_images(campaign.data_dir, config=config)
    return select_images(scan.records, config=config)


def test_alignment_recovers_the_injected_pointing_error(campaign, config, field_images):
    """Acceptance: corrected positions agree with the truth to <= 0.05 px rms."""
    truth_images = campaign.images.set_index("image")
    rms = []
    for row in field_images.itertuples():  # loop over images
        chip = read_chip(row.path, row.chip)
        cat = campaign.catalog(row.target)
        mask = (chip.dq & config.photometry.dq_mask) != 0
        clean = fill_masked(chip.sci, mask)
        xh, yh = chip.wcs.all_world2pix(cat["ra"], cat["dec"], 0)
        al = align_to_catalog(clean, xh, yh, options=config.alignment, flux=cat["flux"],
                              mask=mask)
        truth = campaign.truth(row.target).sel(image=row.image)
        on = truth.on_image.values.astype(bool)
        xt, yt = truth.x.values + chip.ltv[0], truth.y.values + chip.ltv[1]
        xa, ya = al.apply(xh, yh)
        err = np.hypot(xa - xt, ya - yt)[on]
        rms.append(np.sqrt(np.mean(err**2)))
        before = np.sqrt(np.mean(np.hypot(xh - xt, yh - yt)[on] ** 2))
        injected = truth_images.loc[row.image]
        assert al.shift_x == pytest.approx(injected.shift_x, abs=0.05)
        assert al.shift_y == pytest.approx(injected.shift_y, abs=0.05)
        # a rotation error moving the image corners by 0.05 px is within the noise
        half_diagonal = 0.5 * np.hypot(*chip.sci.shape)
        assert al.rotation == pytest.approx(injected.rotation,
                                            abs=np.degrees(0.05 / half_diagonal))
        assert rms[-1] < before or before < 0.05
        assert al.n_matched >= config.alignment.min_matches
        assert 0 < al.residual_rms < 0.5
    assert len(rms) == len(field_images) > 10
    assert max(rms) <= 0.05, f"alignment rms per image: {np.round(rms, 4)}"


def test_alignment_fails_clearly_without_stars(config):
    rng = np.random.default_rng(4)
    empty = rng.normal(10.0, 3.0, (64, 64))
    x, y = rng.uniform(0, 64, 20), rng.uniform(0, 64, 20)
    with pytest.raises(AlignmentError, match=r"blank\.fits: cannot align, 0 stars detected"):
        align_to_catalog(empty, x, y, options=config.alignment, path="blank.fits")


def test_alignment_fails_when_the_catalog_does_not_match(config):
    rng = np.random.default_rng(5)
    x, y = rng.uniform(5, 123, 30), rng.uniform(5, 123, 30)
    img = render_stars((128, 128), x, y, np.full(30, 2e4)) + rng.normal(10, 3, (128, 128))
    wrong_x, wrong_y = rng.uniform(5, 123, 30), rng.uniform(5, 123, 30)
    with pytest.raises(AlignmentError, match="matched the catalog"):
        align_to_catalog(img, wrong_x, wrong_y, options=config.alignment, path="x.fits")
