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

from stiscube.dq._bits import DEFAULT_DARK_DQ_MASK
from stiscube.properties._kernels import reject_cosmic_rays

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
    assert reject_cosmic_rays(s, e, None, t, g, cr_sigma=6.0)[0].all()
    expected[9] = True
    np.testing.assert_array_equal(reject_cosmic_rays(s, e, None, t, g, cr_sigma=5.3)[0], expected)


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
    assert reject_cosmic_rays(s, e, None, t, g, state_sigma=5.0)[0].all()
    # state_sigma = 0.01 (0.2 e-): the four at exactly 300 still agree, the others do not
    kept = reject_cosmic_rays(s, e, None, t, g, state_sigma=0.01)[0]
    assert np.flatnonzero(~kept).tolist() == [14, 17]
    # min_state = 5: four members are too few, all six high samples are cosmic rays
    kept = reject_cosmic_rays(s, e, None, t, g, min_state=5)[0]
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
    kept = reject_cosmic_rays(s, e, dq, t, g, dq_mask=dq_mask)[0]
    assert np.flatnonzero(~kept).tolist() == dropped
