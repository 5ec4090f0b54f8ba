"""Synthetic data with a known truth: simulated STIS CCD darks and property cubes.

:func:`~stiscube.datasets.simulate.simulate_darks` (:mod:`stiscube.datasets.simulate`)
writes dark frames whose per-pixel truth is known; :mod:`stiscube.datasets._synthcube`
builds small property cubes for tests and benchmarks.
"""
