"""stores.common.validate: normalised values and the exact messages callers' tests match."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pytest

from stores.common.validate import (
    as_bool,
    as_float,
    as_int,
    as_interval,
    as_sequence_of,
    as_shape2,
    as_str,
    card_value,
    check_fields,
    instance_of,
    one_of,
    subset_of,
)


def test_as_int_normalises_numpy_and_checks_bounds():
    out = as_int(np.int64(7), "n", min=1, max=10)
    assert out == 7 and type(out) is int
    assert as_int(None, "maxiters", allow_none=True) is None
    assert as_int(12.0, "flash", allow_integral_float=True) == 12


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: as_int(0, "n_periods", min=1), ValueError,
         "n_periods must be an integer >= 1, got 0"),
        (lambda: as_int(1.5, "n_periods", min=1), TypeError,
         "n_periods must be an integer >= 1, got 1.5"),
        (lambda: as_int(True, "n", min=1), TypeError, "n must be an integer >= 1, got True"),
        (lambda: as_int("3", "track"), TypeError, "track must be an integer, got '3'"),
        (lambda: as_int(70000, "value", min=0, max=65535), ValueError,
         "value must be an integer in [0, 65535], got 70000"),
        (lambda: as_int(11, "n_epochs", max=10), ValueError,
         "n_epochs must be an integer <= 10, got 11"),
        (lambda: as_int(2.5, "maxiters", min=1, allow_none=True), TypeError,
         "maxiters must be an integer >= 1 or None, got 2.5"),
        (lambda: as_int(12.5, "flash", allow_integral_float=True), ValueError,
         "flash must be an integer, got 12.5"),
        (lambda: as_int(float("nan"), "flash", allow_integral_float=True), ValueError,
         "flash must be an integer, got nan"),
    ],
)
def test_as_int_messages(call, exc, message):
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        call()


def test_as_float_normalises():
    out = as_float(np.float32(0.5), "fraction", min=0, max=1)
    assert out == 0.5 and type(out) is float
    assert as_float(3, "sigma") == 3.0 and type(as_float(3, "sigma")) is float
    assert as_float(None, "hot_level", allow_none=True) is None
    assert np.isinf(as_float(np.inf, "rtol", finite=False))
    assert as_float(1.0, "f", min=0, max=1, strict_min=True) == 1.0  # (0, 1] holds 1


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: as_float(0, "sigma", min=0, strict_min=True), ValueError,
         "sigma must be > 0, got 0"),
        (lambda: as_float(-1.0, "ratio_plots", min=0), ValueError,
         "ratio_plots must be >= 0, got -1.0"),
        (lambda: as_float(2, "blemish_fraction", min=0, max=1), ValueError,
         "blemish_fraction must be in [0, 1], got 2"),
        (lambda: as_float(0, "state_fraction", min=0, max=1, strict_min=True), ValueError,
         "state_fraction must be in (0, 1], got 0"),
        (lambda: as_float(1, "period_jitter", min=0, max=1, strict_max=True), ValueError,
         "period_jitter must be in [0, 1), got 1"),
        (lambda: as_float(float("nan"), "level"), ValueError, "level must be finite, got nan"),
        (lambda: as_float(np.inf, "level", min=0), ValueError, "level must be finite, got inf"),
        (lambda: as_float("five", "hot_nsigma", allow_none=True), TypeError,
         "hot_nsigma must be a number or None, got 'five'"),
        (lambda: as_float(True, "sigma"), TypeError, "sigma must be a number, got True"),
        (lambda: as_float(None, "sigma"), TypeError, "sigma must be a number, got None"),
        (lambda: as_float(-2, "lock_timeout", min=0, units="seconds"), ValueError,
         "lock_timeout must be >= 0 (seconds), got -2"),
        (lambda: as_float(float("nan"), "x", min=0, finite=False), ValueError,
         "x must be >= 0, got nan"),
    ],
)
def test_as_float_messages(call, exc, message):
    with pytest.raises(exc, match=f"^{re.escape(message)}$"):
        call()


def test_as_bool_and_as_str():
    assert as_bool(np.bool_(True), "enabled") is True
    with pytest.raises(TypeError, match=r"^enabled must be True or False, got 1$"):
        as_bool(1, "enabled")
    assert as_str("x", "flux_var") == "x"
    with pytest.raises(TypeError, match=r"^flux_var must be a string, got 3$"):
        as_str(3, "flux_var")
    with pytest.raises(ValueError, match=r"^descrip must be one line of text, got 'a\\nb'$"):
        as_str("a\nb", "descrip", one_line=True)
    with pytest.raises(ValueError, match=r"^key must be a non-empty string, got ' '$"):
        as_str(" ", "key")


def test_one_of():
    assert one_of("mean", "how", ("max", "mean")) == "mean"
    assert one_of(np.int64(4), "ccdgain", (1, 2, 4, 8)) == 4
    with pytest.raises(ValueError, match=r"^how must be one of \['max', 'mean'\], got 'median'$"):
        one_of("median", "how", ("max", "mean"))
    # True is not the gain 1, and an array is never a choice
    with pytest.raises(ValueError, match=r"^ccdgain must be one of \[1, 2, 4, 8\], got True$"):
        one_of(True, "ccdgain", (1, 2, 4, 8))
    with pytest.raises(ValueError, match="chip must be one of"):
        one_of(np.array([1, 2]), "chip", (1, 2))
    with pytest.raises(ValueError, match=r"^layout must be one of \['cube', 'frames'\], got \[\]"):
        one_of([], "layout", ["cube", "frames"])  # unhashable value


def test_subset_of():
    assert subset_of(["b", "a", "b"], "terms", ("a", "b", "c")) == ("b", "a")
    assert subset_of("a", "terms", ("a", "b")) == ("a",)
    assert subset_of([], "terms", ("a",), non_empty=False) == ()
    with pytest.raises(ValueError, match=r"^terms must be drawn from \['1', 'a'\], got unknown "
                                         r"\['x'\]$"):
        subset_of(["a", "x"], "terms", ["a", "1"])
    with pytest.raises(ValueError, match=r"^filters must be a non-empty selection from"):
        subset_of([], "filters", ["F606W"])


def test_as_shape2():
    assert as_shape2([64, np.int32(128)]) == (64, 128)
    with pytest.raises(ValueError, match=r"^shape must be \(rows, columns\), got \(64,\)$"):
        as_shape2((64,))
    with pytest.raises(ValueError, match=r"^shape must be \(rows, columns\), got 64$"):
        as_shape2(64)
    with pytest.raises(ValueError, match=r"^shape must be \(rows, columns\), got \(64.0, 2\)$"):
        as_shape2((64.0, 2))
    with pytest.raises(ValueError, match=r"^shape must be \(rows, columns\) both >= 1, got"):
        as_shape2((0, 3))
    with pytest.raises(ValueError, match=r"between \(16, 16\) and \(2051, 4096\), got "):
        as_shape2((8, 8), min=16, max=(2051, 4096))


def test_as_interval():
    assert as_interval([1, np.float32(10)], "flux_range", min=0) == (1.0, 10.0)
    assert as_interval((2, 2), "r", strict=False) == (2.0, 2.0)
    msg = "flux_range must be (low, high) e- with 0 <= low < high, got (0, 0)"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        as_interval((0, 0), "flux_range", min=0, units="e-")
    msg = "percentiles must be (low, high) with 0 <= low < high <= 100, got (5, 101)"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        as_interval((5, 101), "percentiles", min=0, max=100)
    with pytest.raises(ValueError, match="got 'ab'"):
        as_interval("ab", "r")
    with pytest.raises(ValueError, match="with low < high"):
        as_interval((1, float("nan")), "r")


def test_as_sequence_of():
    positive = partial(as_float, min=0, strict_min=True)
    assert as_sequence_of([3, np.float64(5.5)], "apertures", positive) == (3.0, 5.5)
    with pytest.raises(ValueError, match=r"^apertures\[1\] must be > 0, got -1$"):
        as_sequence_of([3, -1], "apertures", positive)
    with pytest.raises(ValueError, match=r"^apertures must be a non-empty sequence, got \[\]$"):
        as_sequence_of([], "apertures", positive)
    with pytest.raises(TypeError, match=r"^apertures must be a sequence, got '3'$"):
        as_sequence_of("3", "apertures", positive)
    with pytest.raises(ValueError, match=r"^flashes must not repeat values, got \[0, 0\]$"):
        as_sequence_of([0, 0], "flashes", partial(as_int, min=0), unique=True)
    with pytest.raises(ValueError, match=r"^x must be a sequence of 1 to 2 values"):
        as_sequence_of([1, 2, 3], "x", as_int, max_len=2)


def test_instance_of():
    arr = np.zeros(2)
    assert instance_of(arr, "a", np.ndarray) is arr
    with pytest.raises(TypeError, match=r"^ds must be an xarray.Dataset, got list$"):
        instance_of([], "ds", np.ndarray, what="an xarray.Dataset")
    with pytest.raises(TypeError, match=r"^x must be an instance of int or float, got str$"):
        instance_of("1", "x", (int, float))


@dataclass(frozen=True)
class _Options:
    sigma: float = 3.0
    maxiters: int | None = 5
    how: str = "mean"
    apertures: tuple = field(default=(3, 5))

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "sigma": partial(as_float, min=0, strict_min=True),
                "maxiters": partial(as_int, min=1, allow_none=True),
                "how": partial(one_of, choices=("max", "mean")),
                "apertures": partial(as_sequence_of, item=partial(as_float, min=0)),
            },
            prefix="_Options.",
        )


def test_check_fields_on_a_frozen_dataclass():
    opts = _Options(sigma=np.float32(2.5), maxiters=np.int64(3), apertures=[1, 2])
    assert opts.sigma == 2.5 and type(opts.sigma) is float
    assert opts.maxiters == 3 and type(opts.maxiters) is int
    assert opts.apertures == (1.0, 2.0)
    assert _Options(maxiters=None).maxiters is None
    with pytest.raises(ValueError, match=r"^_Options.sigma must be > 0, got 0$"):
        _Options(sigma=0)
    with pytest.raises(ValueError, match=r"^_Options.how must be one of \['max', 'mean'\]"):
        _Options(how="median")
    with pytest.raises(TypeError, match=r"^_Options.maxiters must be an integer >= 1 or None"):
        _Options(maxiters=2.0)


def test_check_fields_refuses_unknown_fields_and_non_dataclasses():
    @dataclass
    class Plain:
        a: int = 1

    with pytest.raises(KeyError, match="has no field"):
        check_fields(Plain(), {"b": as_int})
    with pytest.raises(TypeError, match="needs a dataclass instance"):
        check_fields(object(), {})


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [(2, int, 2), (np.int16(3), int, 3), (4.0, int, 4), (" 5 ", int, 5),
     (1, float, 1.0), (np.float32(0.5), float, 0.5), ("1.5", float, 1.5), (" -2 ", float, -2.0)],
)
def test_card_value_takes_numbers_and_their_text(value, kind, expected):
    got = card_value(value, "KEY", kind)
    assert got == expected and type(got) is kind


@pytest.mark.parametrize(
    ("value", "kind", "exc", "match"),
    [("two", int, ValueError, "^BINAXIS1 must be an integer, got 'two'$"),
     ("2.5", int, ValueError, "^BINAXIS1 must be an integer, got '2.5'$"),
     (1.5, int, ValueError, "^BINAXIS1 must be an integer, got 1.5$"),
     (True, int, TypeError, "^BINAXIS1 must be an integer, got True$"),
     ("long", float, ValueError, "^BINAXIS1 must be a number, got 'long'$"),
     (float("inf"), float, ValueError, "^BINAXIS1 must be finite, got inf$"),
     ("nan", float, ValueError, "^BINAXIS1 must be finite, got nan$"),
     (None, float, TypeError, "^BINAXIS1 must be a number, got None$")],
)
def test_card_value_refuses_the_rest_naming_the_keyword(value, kind, exc, match):
    with pytest.raises(exc, match=match):
        card_value(value, "BINAXIS1", kind)
