"""Synthetic data with a known truth: simulated STIS CCD darks and property cubes.

:func:`simulate_darks` (:mod:`stiscube.datasets.simulate`) writes dark frames whose
per-pixel truth is known; :func:`random_properties` builds property arrays (a period's
five properties, seeded) for tests, benchmarks and examples.
"""

from stiscube.datasets._synthcube import random_properties
from stiscube.datasets.simulate import simulate_darks

__all__ = ["random_properties", "simulate_darks"]
