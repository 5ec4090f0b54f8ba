"""The command-line form of an options dataclass (stores.common.cli.add_options) and the
deprecation aliases of renamed names (stores.common.deprecation)."""

from __future__ import annotations

import argparse
import dataclasses
import types
from pathlib import Path

import pytest

from stores.common.cli import add_options, options_from_args
from stores.common.deprecation import renamed


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Options:
    """Toy options.

    Parameters
    ----------
    sigma : float
        Threshold in standard deviations.
    maxiters, window : int
        Iterations, and a window
        that is described on two lines.
    radii : tuple of float
        Aperture radii in pixel.
    fast : bool
        Take the shortcut.
    path : pathlib.Path or None
        Where to write.

    Raises
    ------
    ValueError
        Never.
    """

    sigma: float = 5.0
    maxiters: int = 10
    window: int = 1
    radii: tuple[float, ...] = (3.0, 5.0)
    fast: bool = False
    path: Path | None = None


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    add_options(parser, _Options, **kwargs)
    return parser


def test_flags_help_and_defaults_come_from_the_dataclass():
    text = _parser().format_help()
    assert "--sigma SIGMA" in text and "--no-fast" in text and "--radii RADII [RADII ...]" in text
    assert "Threshold in standard deviations. (default: 5.0)" in " ".join(text.split())
    assert "that is described on two lines. (default: 1)" in " ".join(text.split())
    # nothing given: the dataclass's own defaults, not copies of them
    assert options_from_args(_parser().parse_args([]), _Options) == _Options()


def test_given_flags_are_converted_and_others_keep_their_defaults():
    args = _parser().parse_args(["--sigma", "3.5", "--radii", "2", "4", "--fast", "--path", "x"])
    got = options_from_args(args, _Options)
    assert got == _Options(sigma=3.5, radii=(2.0, 4.0), fast=True, path=Path("x"))
    assert isinstance(got.radii, tuple)  # nargs="+" gives a list; the field holds a tuple


def test_excluded_fields_are_set_by_the_caller():
    parser = _parser(exclude=("path",))
    assert "--path" not in parser.format_help()
    got = options_from_args(parser.parse_args(["--maxiters", "3"]), _Options, path=Path("y"))
    assert got == _Options(maxiters=3, path=Path("y"))


def test_undocumented_or_unsupported_fields_are_refused():
    @dataclasses.dataclass(frozen=True)
    class Undocumented:
        """No parameters section."""

        level: float = 0.1

    with pytest.raises(TypeError, match=r"Undocumented.level has no entry"):
        add_options(argparse.ArgumentParser(), Undocumented)

    @dataclasses.dataclass(frozen=True)
    class Nested:
        """Nested.

        Parameters
        ----------
        inner : dict
            Not a flag.
        """

        inner: dict = dataclasses.field(default_factory=dict)

    with pytest.raises(TypeError, match=r"Nested.inner: a field of type .* exclude="):
        add_options(argparse.ArgumentParser(), Nested)
    add_options(argparse.ArgumentParser(), Nested, exclude=("inner",))


def test_renamed_names_resolve_with_a_future_warning():
    module = types.ModuleType("toy")
    module.__getattr__ = renamed("toy", {"old_join": "os.path.join"})
    import os.path

    with pytest.warns(FutureWarning, match=r"toy.old_join was renamed os.path.join"):
        assert module.old_join is os.path.join
    with pytest.raises(AttributeError, match=r"module 'toy' has no attribute 'other'"):
        _ = module.other
