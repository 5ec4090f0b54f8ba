"""ClipOptions: the seven cosmic-ray clipping options, validated once and passed down."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import stiscube
from stiscube.properties import _kernels
from stiscube.properties._kernels import ClipOptions, pixel_properties


def _stack():
    rng = np.random.default_rng(3)
    sci = rng.normal(10.0, 2.0, (12, 5, 4)).astype(np.float32)
    sci[3, 1, 1] += 500.0  # one cosmic ray
    err = np.full_like(sci, 2.0)
    return sci, err, np.zeros(sci.shape, np.int16), [100.0] * 12, [1.0] * 12


def test_defaults_and_public_name():
    opts = ClipOptions()
    assert dataclasses.asdict(opts) == {
        "dq_mask": 1 + 2 + 256 + 8192,
        "cr_sigma": 5.0,
        "maxiters": 10,
        "state_fraction": 0.2,
        "min_state": 4,
        "state_sigma": 4.0,
        "min_tail": 3,
    }
    assert stiscube.ClipOptions is ClipOptions
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.cr_sigma = 3.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="cr_sigma must be > 0, got -1"):
        ClipOptions(cr_sigma=-1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'cr_sigmaa'"):
        ClipOptions(cr_sigmaa=3)
    with pytest.raises(ValueError, match=r"min_tail must be 0 \(off\) or an integer >= 2, got 1"):
        ClipOptions(min_tail=1)
    assert ClipOptions(min_tail=0).min_tail == 0


def test_options_are_validated_once_and_passed_down(monkeypatch):
    calls = []
    real = _kernels.check_fields

    def counting(obj, spec):
        calls.append(type(obj).__name__)
        return real(obj, spec)

    monkeypatch.setattr(_kernels, "check_fields", counting)
    opts = ClipOptions(cr_sigma=4.0, maxiters=3)
    assert calls == ["ClipOptions"]
    out = pixel_properties(*_stack(), axis=0, clip=opts)
    assert calls == ["ClipOptions"]  # passed down, not checked again
    assert out[3][1, 1] == 1  # the cosmic ray is excluded: nan_count 1


def test_only_an_options_object_is_accepted():
    with pytest.raises(TypeError, match="unexpected keyword argument 'cr_sigma'"):
        pixel_properties(*_stack(), axis=0, cr_sigma=3.0)
    with pytest.raises(TypeError, match="clip must be a ClipOptions, got dict"):
        pixel_properties(*_stack(), axis=0, clip={"cr_sigma": 3.0})
