"""The property declaration (stiscube.schema): every reader and writer derives from it."""

from __future__ import annotations

import numpy as np
import pytest

from stiscube.schema import PROPERTIES, PROPERTY_DTYPES, property_attrs


def test_units_per_unit_system():
    rate = {name: property_attrs(name)["units"] for name in PROPERTIES}
    counts = {name: property_attrs(name, "counts")["units"] for name in PROPERTIES}
    assert rate["sci_mean"] == rate["err_mean"] == "electron / s"
    assert counts["sci_mean"] == counts["err_mean"] == counts["readnoise"] == "count"
    assert rate["readnoise"] == "electron"
    assert rate["nan_count"] == counts["nan_count"] == "1"
    assert np.dtype(PROPERTY_DTYPES["nan_count"]) == np.uint16


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("hot",), r"^name must be one of \['stability', 'sci_mean', 'err_mean', 'nan_count', "),
        (("sci_mean", "dn"), r"^unit_system must be one of \['counts', 'rate'\], got 'dn'$"),
    ],
)
def test_unknown_names_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        property_attrs(*args)
