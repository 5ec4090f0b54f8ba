"""Conversion of the date forms accepted by :mod:`stiscube` to MJD (UTC).

The implementation lives in :mod:`stores._dates`, shared with :mod:`cte` (for
:func:`cte.correct`); see there for the accepted forms and the exact conventions.
"""

from stores.dates import datetime64_to_mjd, describe_mjd, mjd_to_datetime64, to_mjd

__all__ = ["datetime64_to_mjd", "describe_mjd", "mjd_to_datetime64", "to_mjd"]
