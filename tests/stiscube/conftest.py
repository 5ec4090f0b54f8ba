"""Fixtures of the stiscube tests, built from the package's own seeded simulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from dask.callbacks import Callback

from stiscube.datasets.simulate import DarkPhysics, SimulatedDarks, simulate_darks, simulate_stack
from stiscube.properties.compute import compute_properties

#: Frames per period of the acceptance simulation (the issue asks for >= 20).
ACCEPTANCE_FRAMES = 24
#: Frame shape of the acceptance simulation (small for speed, 16384 pixels).
ACCEPTANCE_SHAPE = (128, 128)


@pytest.fixture(scope="session")
def sim_periods(tmp_path_factory: pytest.TempPathFactory) -> SimulatedDarks:
    """Two simulated anneal periods of 24 darks of 128 x 128 written as FLT files.

    More flickering pixels and a larger initial hot population than the defaults, so
    that the acceptance fractions are measured on a few hundred pixels.
    """
    return simulate_darks(
        tmp_path_factory.mktemp("sim_periods"),
        n_periods=2,
        frames_per_period=ACCEPTANCE_FRAMES,
        shape=ACCEPTANCE_SHAPE,
        seed=20240611,
        physics=DarkPhysics(flicker_fraction=0.01, initial_hot_fraction=0.006),
    )


@pytest.fixture(scope="session")
def sim_props(sim_periods: SimulatedDarks) -> dict[int, tuple]:
    """Period number -> (computed properties, truth) for :func:`sim_periods`."""
    out = {}
    for number, files in sim_periods.files.items():
        props = compute_properties(files, period=sim_periods.periods[number]).compute()
        out[number] = (props, sim_periods.truth(number))
    return out


@pytest.fixture(scope="session")
def small_darks(tmp_path_factory: pytest.TempPathFactory) -> SimulatedDarks:
    """One period of 5 tiny (16 x 12) darks, the raw material of bad-input tests."""
    return simulate_darks(
        tmp_path_factory.mktemp("small_darks"),
        n_periods=1,
        frames_per_period=5,
        shape=(16, 12),
        seed=5,
    )


@pytest.fixture
def stack_and_truth() -> tuple:
    """One in-memory period: 24 frames of 32 x 32 with plenty of events of every kind."""
    return simulate_stack(
        n_frames=24,
        shape=(32, 32),
        seed=77,
        physics=DarkPhysics(flicker_fraction=0.02, initial_hot_fraction=0.02, nan_fraction=2e-3,
                            fill_fraction=2e-3, blemish_fraction=5e-3),
    )


class _RaiseIfComputes(Callback):
    def _start(self, dsk: object) -> None:
        msg = "dask computed something that should have stayed lazy"
        raise AssertionError(msg)


@contextlib.contextmanager
def _raise_if_dask_computes() -> Iterator[None]:
    with _RaiseIfComputes():
        yield


@pytest.fixture
def raise_if_dask_computes():
    """Context manager failing the test if a dask graph is computed inside it (as in xarray)."""
    return _raise_if_dask_computes
