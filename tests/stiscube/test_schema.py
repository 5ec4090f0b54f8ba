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


def test_every_declared_unit_parses_with_astropy_and_the_truth_follows_its_declaration():
    import astropy.units as u

    from stiscube.datasets.simulate import simulate_stack
    from stiscube.schema import TRUTH_VARIABLES, UNIT_SYSTEMS

    declared = [unit for system in UNIT_SYSTEMS.values() for unit in system.values()]
    declared += [unit for _, unit in TRUTH_VARIABLES.values()]
    expected = {"electron / s": u.electron / u.s, "electron": u.electron, "count": u.count,
                "1": u.dimensionless_unscaled, "d": u.day}
    for unit in declared:
        assert u.Unit(unit) == expected[unit]
    stack, truth = simulate_stack(n_frames=3, shape=(8, 8), seed=1)
    assert set(TRUTH_VARIABLES) <= set(truth.data_vars)
    for name, (dtype, unit) in TRUTH_VARIABLES.items():
        assert truth[name].dtype == np.dtype(dtype), name
        assert truth[name].attrs["units"] == unit, name
    for ds in (stack, truth):  # every other units attribute the simulator writes parses too
        for var in ds.variables.values():
            if "units" in var.attrs:
                u.Unit(var.attrs["units"])
    assert u.Unit(truth["occdhtav"].attrs["units"]) == u.deg_C
