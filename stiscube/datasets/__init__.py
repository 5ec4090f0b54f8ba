"""Synthetic data with a known truth: simulated STIS CCD darks and property cubes.

:func:`simulate_darks` (:mod:`stiscube.datasets.simulate`) writes dark frames whose
per-pixel truth is known; :func:`random_properties` builds property arrays (a period's
five properties, seeded) for tests, benchmarks and examples; :func:`simulate_mission`
(:mod:`stiscube.datasets.mission`) simulates the whole STIS mission, 1997-2026, on the
published record, with per-period truth (hot pixels, read noise, anneal repair);
:func:`load_simulation` reads either back.
"""

from stiscube.datasets._synthcube import random_properties
from stiscube.datasets.mission import (
    MissionPhysics,
    SimulatedMission,
    load_simulation,
    simulate_mission,
)
from stiscube.datasets.simulate import simulate_darks

__all__ = [
    "MissionPhysics",
    "SimulatedMission",
    "load_simulation",
    "random_properties",
    "simulate_darks",
    "simulate_mission",
]
