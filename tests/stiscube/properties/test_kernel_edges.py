"""Edge cases of the cosmic-ray kernel that the mutation run (benchmarks/MUTATION.md) found
unpinned: the documented default thresholds and the pass-through of ``dq_mask`` and
``state_sigma``.

Every expectation is computed by hand from the formulas of the kernel's docstring: one
pixel, ``t = 1 s``, ``g = 1``, a steady level of 100 e-, and ``ERR**2 = 100 + SCI`` so
that the read-noise variance of every sample is ``v = ERR**2 - SCI = 100 e-**2``.  At the
centre ``c = 100`` the noise of a sample is ``s = sqrt(v + c) = sqrt(200)`` e-.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stiscube.properties._kernels import ClipOptions, reject_cosmic_rays
from stiscube.schema import DEFAULT_DARK_DQ_MASK

N = 20
LEVEL = 100.0
S_CENTRE = math.sqrt(100.0 + LEVEL)  # noise of a sample at the centre c = 100 e-/s


def _pixel(sci):
    sci = np.asarray(sci, dtype=np.float32)[None, :]
    err = np.sqrt(100.0 + sci).astype(np.float32)  # v = ERR**2 - SCI = 100
    return sci, err, np.ones(sci.shape[-1]), np.ones(sci.shape[-1])


def test_default_threshold_is_five_sigma_at_4p8_5p2_and_5p5():
    # 17 steady samples and three above the centre by 4.8, 5.2 and 5.5 sigma: with the
    # documented default cr_sigma = 5 only the last two are cosmic rays (two candidates
    # are fewer than min_state = 4, so they cannot be a state).
    sci = np.full(N, LEVEL)
    sci[3] = LEVEL + 4.8 * S_CENTRE
    sci[9] = LEVEL + 5.2 * S_CENTRE
    sci[15] = LEVEL + 5.5 * S_CENTRE
    s, e, t, g = _pixel(sci)
    kept = reject_cosmic_rays(s, e, None, t, g)
    expected = np.ones(N, bool)
    expected[[9, 15]] = False
    np.testing.assert_array_equal(kept[0], expected)
    # an explicit threshold of 6 keeps all three, one of 5.3 keeps the 5.2-sigma sample
    assert reject_cosmic_rays(s, e, None, t, g, clip=ClipOptions(cr_sigma=6.0))[0].all()
    expected[9] = True
    kept = reject_cosmic_rays(s, e, None, t, g, clip=ClipOptions(cr_sigma=5.3))[0]
    np.testing.assert_array_equal(kept, expected)


def _state_pixel():
    # 14 steady samples, four at a high level of 300 e- and two at 300 + 4.5 sigma of that
    # level (sigma = sqrt(v + 300) = 20 e-).  All six are > 5 sigma above the centre 100.
    sci = np.full(N, LEVEL)
    sci[[2, 5, 8, 11]] = 300.0
    sci[[14, 17]] = 300.0 + 4.5 * math.sqrt(100.0 + 300.0)
    return _pixel(sci)


def test_default_state_protection_keeps_a_level_of_four_within_four_sigma():
    # Candidates: 6 >= max(min_state = 4, ceil(0.2 * 20) = 4).  Their median rate is 300;
    # the four at 300 are within state_sigma = 4 of it, the two at 4.5 sigma are not.
    # Four members are enough (min_state = 4): they are kept, the other two rejected.
    s, e, t, g = _state_pixel()
    kept = reject_cosmic_rays(s, e, None, t, g)
    expected = np.ones(N, bool)
    expected[[14, 17]] = False
    np.testing.assert_array_equal(kept[0], expected)


def test_state_sigma_and_min_state_are_used():
    s, e, t, g = _state_pixel()
    # state_sigma = 5: all six are members of the level and kept
    assert reject_cosmic_rays(s, e, None, t, g, clip=ClipOptions(state_sigma=5.0))[0].all()
    # state_sigma = 0.01 (0.2 e-): the four at exactly 300 still agree, the others do not
    kept = reject_cosmic_rays(s, e, None, t, g, clip=ClipOptions(state_sigma=0.01))[0]
    assert np.flatnonzero(~kept).tolist() == [14, 17]
    # min_state = 5: four members are too few, all six high samples are cosmic rays
    kept = reject_cosmic_rays(s, e, None, t, g, clip=ClipOptions(min_state=5))[0]
    assert np.flatnonzero(~kept).tolist() == [2, 5, 8, 11, 14, 17]


@pytest.mark.parametrize(
    ("dq_mask", "flag", "dropped"),
    [
        (DEFAULT_DARK_DQ_MASK, 256, [4]),  # a default bit invalidates the sample
        (0, 256, []),  # no mask: the flag is ignored
        (16, 16, [4]),  # a bit outside the default mask counts when asked for
        (DEFAULT_DARK_DQ_MASK, 16, []),
    ],
)
def test_dq_mask_is_applied(dq_mask, flag, dropped):
    s, e, t, g = _pixel(np.full(N, LEVEL))
    dq = np.zeros(s.shape, np.int16)
    dq[0, 4] = flag
    kept = reject_cosmic_rays(s, e, dq, t, g, clip=ClipOptions(dq_mask=dq_mask))[0]
    assert np.flatnonzero(~kept).tolist() == dropped


def _late_pixel(levels_from_end, high=300.0):
    """Steady at 100 e- with the last frames at *high* (a hot pixel switched on)."""
    sci = np.full(N, LEVEL)
    for k, value in enumerate(levels_from_end):
        sci[N - 1 - k] = value
    return _pixel(sci)


@pytest.mark.parametrize(
    ("tail", "min_tail", "rejected"),
    [
        ((300.0, 300.0, 300.0), 3, []),  # three frames at one level to the end: kept
        ((300.0, 300.0, 300.0), 0, [17, 18, 19]),  # the test off: cosmic rays
        ((300.0, 300.0), 3, [18, 19]),  # two frames: too few for min_tail = 3
        ((300.0, 300.0), 2, []),
        ((300.0, 300.0, 300.0), 4, [17, 18, 19]),
        # three high samples at the end whose charges disagree (> 4 sigma): cosmic rays
        ((300.0, 600.0, 1200.0), 3, [17, 18, 19]),
        # a level of three plus a cosmic ray on top of it in the last frame: the ray goes
        ((300.0 + 10 * 20.0, 300.0, 300.0, 300.0), 3, [19]),
    ],
)
def test_level_held_to_the_end_is_kept(tail, min_tail, rejected):
    # 20 frames: ceil(0.2 * 20) = 4 = min_state, so the recurring-level test needs four
    # members; a level of 3 at the end is kept only by the level-to-the-end test.
    s, e, t, g = _late_pixel(tail)
    kept = reject_cosmic_rays(s, e, None, t, g, clip=ClipOptions(min_tail=min_tail))[0]
    assert np.flatnonzero(~kept).tolist() == rejected


def test_a_level_before_the_end_is_not_a_tail():
    # three high frames followed by one steady frame: not held to the end, cosmic rays
    s, e, t, g = _late_pixel((LEVEL, 300.0, 300.0, 300.0))
    kept = reject_cosmic_rays(s, e, None, t, g)[0]
    assert np.flatnonzero(~kept).tolist() == [16, 17, 18]
