"""Inputs: STIS CCD dark frames, anneal-period tables and the seed's CSV files.

:mod:`stiscube.io.darks` reads, checks and selects dark frames (FITS through
:mod:`stiscube.io._fitsio`), :mod:`stiscube.io.anneals` parses the anneal-period table,
and :mod:`stiscube.io.seedcsv` reads and writes the seed's ``anneal_{N}.csv`` layout.
"""
