"""stores.common.flags: one registry class; the STIS DQ and cte registries expressed with it give
the same answers as today's modules (stiscube.dq.flags, cte.flags)."""

from __future__ import annotations

import numpy as np
import pytest

import cte.flags as cte_flags
import stiscube.dq.flags as stis
from stores.common.flags import Flag, FlagRegistry

ALL_16BIT = np.arange(2**16)


def _stis_registry() -> FlagRegistry:
    return FlagRegistry(
        list(stis.STIS_DQ),
        name="STIS DQ", dtype=np.uint16, width=16, value_name="DQ value",
    )


def _star_registry() -> FlagRegistry:
    return FlagRegistry(cte_flags.STAR_FLAGS, name="star flag", dtype=np.int32)


def _wfc3_registry() -> FlagRegistry:
    return FlagRegistry(cte_flags.WFC3_DQ, name="WFC3 DQ", dtype=np.int32)


def _by_bits(value: int, table: list[tuple[int, str]]) -> list[str]:
    """Independent decoder: test each power of two of *value* against a plain table."""
    names = [name for bit, name in table if value & bit]
    unknown = value & ~sum(bit for bit, _ in table)
    return names + ([f"unknown_bits_{unknown}"] if unknown else [])


def test_small_registry_against_a_hand_table():
    reg = FlagRegistry([Flag(4, "c", "third"), Flag(1, "a", "first"), Flag(2, "b")], name="demo")
    assert [f.bit for f in reg] == [1, 2, 4]  # kept in bit order
    assert len(reg) == 3 and [f.name for f in reg] == ["a", "b", "c"]
    assert reg.flag("b") == Flag(2, "b", "") and reg.flag(4).name == "c"
    assert "a" in reg and 4 in reg and 8 not in reg and True not in reg
    assert reg.all_bits == 7
    table = [(1, "a"), (2, "b"), (4, "c")]
    for v in range(64):
        assert reg.decode(v) == _by_bits(v, table)
    assert reg.decode(np.int16(5)) == ["a", "c"]
    assert reg.mask(["c", 1]) == 5 and reg.mask("b") == 2 and reg.mask(4) == 4
    assert reg.mask([]) == 0


@pytest.mark.parametrize(
    ("flags", "exc", "match"),
    [
        ([Flag(3, "a")], ValueError, r"flag 'a': bit must be a power of two in \[1, "),
        ([Flag(0, "a")], ValueError, "bit must be a power of two"),
        ([Flag(-2, "a")], ValueError, "bit must be a power of two"),
        ([Flag(1.0, "a")], TypeError, "bit must be an integer, got 1.0"),
        ([Flag(True, "a")], TypeError, "bit must be an integer, got True"),
        ([Flag(1, "a"), Flag(1, "b")], ValueError, r"bits must be unique, got repeated \[1\]"),
        ([Flag(1, "a"), Flag(2, "a")], ValueError, r"names must be unique, got repeated \['a'\]"),
        ([Flag(1, "two words")], ValueError, "names must be non-empty words, got 'two words'"),
        ([Flag(1, "")], ValueError, "names must be non-empty words"),
        ([Flag(2**16, "big")], ValueError, r"power of two in \[1, 65535\], got 65536"),
        (["a"], TypeError, r"demo flag must be a Flag, got str"),
    ],
)
def test_registry_validation(flags, exc, match):
    with pytest.raises(exc, match=match):
        FlagRegistry(flags, name="demo", dtype=np.uint16)


def test_registry_refuses_bad_dtype_and_width():
    with pytest.raises(ValueError, match="dtype must be an integer dtype, got float64"):
        FlagRegistry([Flag(1, "a")], name="demo", dtype=float)
    with pytest.raises(ValueError, match=r"width must be an integer in \[1, 63\] or None, got 0"):
        FlagRegistry([Flag(1, "a")], name="demo", width=0)


def test_stis_dq_registry_matches_stiscube_dqflags_on_every_16_bit_value():
    reg = _stis_registry()
    assert [(f.bit, f.name, f.description) for f in reg] == [
        (f.bit, f.name, f.description) for f in stis.STIS_DQ
    ]
    table = [(f.bit, f.name) for f in stis.STIS_DQ]
    for v in range(2**16):
        expected = _by_bits(v, table)
        assert reg.decode(v) == expected
        assert stis.decode_dq(v) == expected
    got = reg.decode_names(ALL_16BIT.reshape(256, 256))
    np.testing.assert_array_equal(got, stis.decode_dq_names(ALL_16BIT.reshape(256, 256)))
    assert got[0, 20] == "bad_detector_pixel,hot_pixel" and got[0, 0] == ""
    piped = reg.decode_names(np.array([16, 4]), sep="|").tolist()
    assert piped == ["hot_pixel", "bad_detector_pixel"]
    for key in ("hot_pixel", 16, "bad_detector_pixel", 512):
        assert reg.flag(key) == Flag(stis.dq_flag(key).bit, stis.dq_flag(key).name,
                                     stis.dq_flag(key).description)
    assert reg.mask(["hot_pixel", 4, 512]) == stis.dq_mask(["hot_pixel", 4, 512]) == 532
    for subset in (None, [16, "bad_detector_pixel"]):
        ours = reg.cf_attrs(subset, descriptions=True)
        theirs = stis.cf_flag_attrs(subset)
        assert ours.keys() == theirs.keys()
        assert ours["flag_masks"].dtype == theirs["flag_masks"].dtype == np.uint16
        np.testing.assert_array_equal(ours["flag_masks"], theirs["flag_masks"])
        assert ours["flag_meanings"] == theirs["flag_meanings"]
        assert ours["flag_descriptions"] == theirs["flag_descriptions"]
    assert "flag_descriptions" not in reg.cf_attrs()


_LEGACY_STIS = {
    "flag": stis.dq_flag, "decode": stis.decode_dq,
    "decode_names": stis.decode_dq_names, "mask": stis.dq_mask,
}


@pytest.mark.parametrize(
    ("method", "arg", "exc", "match"),
    [
        ("flag", 3, ValueError, "3 is not a single STIS DQ bit"),
        ("flag", "hot", ValueError, "'hot' is not a STIS DQ flag name"),
        ("flag", 1.5, TypeError, "must be an int or a flag name"),
        ("decode", -1, ValueError, "16-bit DQ value"),
        ("decode", 70000, ValueError, "16-bit DQ value"),
        ("decode", True, TypeError, "integer DQ value"),
        ("decode", 16.0, TypeError, "integer DQ value"),
        ("decode_names", np.array([1.0]), TypeError, "integer array"),
        ("decode_names", np.array([70000]), ValueError, "16-bit DQ value"),
        ("mask", ["hot_pixel", 3], ValueError, "3 is not a single STIS DQ bit"),
    ],
)
def test_stis_dq_errors_match_stiscube_dqflags(method, arg, exc, match):
    """The same bad input fails with the same exception type and message in both."""
    with pytest.raises(exc, match=match):
        getattr(_stis_registry(), method)(arg)
    with pytest.raises(exc, match=match):
        _LEGACY_STIS[method](arg)


def test_empty_decode_names():
    out = _stis_registry().decode_names(np.zeros((0, 3), dtype=np.uint16))
    assert out.shape == (0, 3)


@pytest.mark.parametrize(("kind", "make"), [("star", _star_registry), ("dq", _wfc3_registry)])
def test_cte_registries_match_cte_flags(kind, make):
    reg = make()
    legacy = cte_flags.STAR_FLAGS if kind == "star" else cte_flags.WFC3_DQ
    table = [(f.bit, f.name) for f in legacy]
    values = [*range(2**16), 1 << 20, (1 << 20) | 1, 2**31 - 1]
    for v in values:
        expected = _by_bits(v, table)
        assert reg.decode(v) == expected
        assert cte_flags.decode(v, kind=kind) == expected
    ours, theirs = reg.cf_attrs(), cte_flags.cf_flag_attrs(kind=kind)
    assert ours.keys() == theirs.keys() == {"flag_masks", "flag_meanings"}
    assert ours["flag_masks"].dtype == theirs["flag_masks"].dtype == np.int32
    np.testing.assert_array_equal(ours["flag_masks"], theirs["flag_masks"])
    assert ours["flag_meanings"] == theirs["flag_meanings"]
    with pytest.raises(ValueError, match=r"^value must be >= 0, got -1$"):
        reg.decode(-1)
    with pytest.raises(ValueError, match=r"^value must be >= 0, got -1$"):
        cte_flags.decode(-1, kind=kind)
    if kind == "dq":
        assert reg.mask([256, 2048]) == cte_flags.dq_bits_mask([256, 2048]) == 2304
        with pytest.raises(ValueError, match="known bits are"):
            reg.mask([3])
        with pytest.raises(ValueError, match="known bits are"):
            cte_flags.dq_bits_mask([3])


def test_cf_attrs_decode_like_cf_xarray_would():
    """CF 1.11 section 3.5: meaning i is set when v & flag_masks[i] == flag_masks[i]."""
    reg = _wfc3_registry()
    attrs = reg.cf_attrs()
    masks = attrs["flag_masks"]
    meanings = attrs["flag_meanings"].split()
    rng = np.random.default_rng(3)
    for v in rng.integers(0, 2**15, 200):
        cf = [m for mask, m in zip(masks, meanings, strict=True) if v & mask == mask]
        assert cf == reg.decode(int(v))
    sub = reg.cf_attrs(["hot_pixel", 4, 16])
    assert sub["flag_masks"].tolist() == [4, 16]
    assert sub["flag_meanings"] == "bad_detector_pixel hot_pixel"


def test_registry_flags_are_read_only_and_repr():
    reg = _star_registry()
    with pytest.raises(AttributeError):
        next(iter(reg)).bit = 3  # frozen
    assert "off_chip" in repr(reg) and "star flag" in repr(reg)
