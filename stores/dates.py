"""Public home of the date conversions shared by :mod:`stiscube` and :mod:`cte`.

See :mod:`stores._dates` for the rules (MJD <-> datetime64, dates outside the
datetime64[ns] range refused).
"""

from stores._dates import datetime64_to_mjd, describe_mjd, mjd_to_datetime64, to_mjd

__all__ = ["datetime64_to_mjd", "describe_mjd", "mjd_to_datetime64", "to_mjd"]
