"""cte.schema is the one declaration of the photometry Dataset: synthetic photometry (the
fixture of every analysis test) passes the same validation as stored products."""

from __future__ import annotations

import numpy as np
import pytest

from cte import InvalidPhotometryError
from cte.analysis.pairs import validate_photometry
from cte.datasets._synthphot import make_photometry
from cte.schema import COORDS, VARIABLES, image_coordinates, validate


@pytest.mark.parametrize("layout", ["nominal", "180"])
def test_synthetic_photometry_passes_the_store_validator(layout):
    ds = make_photometry(n_stars=30, layout=layout, seed=3).photometry
    validate(ds, where="synthetic photometry")  # the PhotometryStore's own check
    validate_photometry(ds, variables=tuple(VARIABLES))  # the analysis' check
    # every declared name is there, with the declared units (written from the declaration)
    for name, (dims, dtype, units, long_name) in {**VARIABLES, **COORDS}.items():
        assert ds[name].dims == dims
        assert ds[name].dtype == np.dtype(dtype)
        assert (ds[name].attrs["units"], ds[name].attrs["long_name"]) == (units, long_name)
    assert ds["flags"].attrs["flag_meanings"].split()[0] == "off_chip"


def test_synthetic_photometry_is_written_and_read_back_by_the_store(tmp_path):
    from cte import PhotometryStore

    ds = make_photometry(n_stars=20, seed=4).photometry
    store = PhotometryStore(tmp_path / "store")
    (key,) = store.write_images([ds])
    back = store.read(key).load()
    np.testing.assert_array_equal(np.sort(back["image"].values), np.sort(ds["image"].values))


def test_image_coordinates_follow_the_declaration():
    names = image_coordinates()
    assert names[0] == "image"
    assert set(names) == {n for n, (dims, *_) in COORDS.items() if dims == ("image",)}
    assert {"orientat", "pam_corrected", "mjd", "chip"} <= set(names)


def test_a_synthetic_dataset_missing_a_declared_coordinate_is_refused():
    ds = make_photometry(n_stars=10, seed=5).photometry.drop_vars("orientat")
    with pytest.raises(InvalidPhotometryError, match="missing coordinate 'orientat'"):
        validate(ds)


def test_loss_dataset_and_coefficient_table_follow_their_declarations(tmp_path):
    import astropy.units as u
    from astropy.table import Table

    from cte.analysis.lossmodel import BASIS_TERMS
    from cte.schema import LOSS_COORDS, LOSS_DIMS, LOSS_VARIABLES, coefficient_columns
    from tests.cte._analysis_fixtures import campaign_loss, campaign_model

    loss = campaign_loss()
    assert set(loss.data_vars) == set(LOSS_VARIABLES)
    assert set(loss.coords) == set(LOSS_COORDS)
    for name, (dims, dtype, units, long_name) in {**LOSS_VARIABLES, **LOSS_COORDS}.items():
        assert loss[name].dims == dims and (name not in LOSS_VARIABLES or dims == LOSS_DIMS)
        assert loss[name].dtype.kind == ("U" if dtype == "str" else np.dtype(dtype).kind)
        assert (loss[name].attrs["units"], loss[name].attrs["long_name"]) == (units, long_name)
    path = tmp_path / "coefficients.ecsv"
    campaign_model().write(path)
    table = Table.read(path, format="ascii.ecsv")
    declared = coefficient_columns(BASIS_TERMS)
    assert table.colnames == list(declared)
    for name, (unit, description, _) in declared.items():
        assert table[name].unit == (None if unit is None else u.Unit(unit))
        assert table[name].description == description


def test_every_declared_unit_parses_with_astropy():
    """Issue 25: every ``units`` attribute of every product is one astropy reads."""
    import astropy.units as u

    from cte import schema

    declared = {**schema.VARIABLES, **schema.COORDS, **schema.PAIR_COORDS,
                **schema.LOSS_VARIABLES, **schema.LOSS_COORDS, **schema.TRUTH_VARIABLES,
                **schema.SYNTHETIC_TRUTH}
    for field in declared.values():
        u.Unit(field.units)  # raises ValueError for "px", "pix" or "1 / transfer"
    for unit, _, _ in schema.coefficient_columns(("1", "x")).values():
        if unit is not None:
            u.Unit(unit)
    synthetic = make_photometry(n_stars=10, seed=6)
    for ds in (synthetic.photometry, synthetic.truth):
        for name in ds.variables:
            u.Unit(ds[name].attrs["units"])
