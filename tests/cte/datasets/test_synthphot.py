"""Options of the synthetic photometry factory: refused with the parameter named."""

import pytest

from cte.datasets._synthphot import DEFAULT_TRUTH, make_photometry


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_stars": 0}, ValueError, "n_stars must be an integer >= 1, got 0"),
        ({"apertures": ()}, ValueError, r"apertures must be a non-empty sequence, got \(\)"),
        ({"apertures": (3.0, -1.0)}, ValueError, r"apertures\[1\] must be > 0 \(pixel\), got -1.0"),
        ({"layout": "90"}, ValueError, r"layout must be one of \['nominal', '180'\], got '90'"),
        ({"ctecorr": ("RAW",)}, ValueError, r"ctecorr must be drawn from .*unknown \['RAW'\]"),
        ({"ctecorr": ("FLC",), "truth": {"FLT": DEFAULT_TRUTH["FLT"]}}, ValueError,
         r"ctecorr must be drawn from \['FLT'\], got unknown \['FLC'\]"),
        ({"exptimes": {"medium": 30.0}}, ValueError,
         r"exptimes must be drawn from \['long', 'short'\], got unknown \['medium'\]"),
        ({"exptimes": {"short": 0.0}}, ValueError, r"exptimes\['short'\] must be > 0 \(s\)"),
        ({"exptimes": [30.0]}, TypeError, "exptimes must be a mapping of 'short'/'long'"),
    ],
)
def test_invalid_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_photometry(**kwargs)


def test_options_are_normalised():
    """An integral float star count and integer radii are accepted as the numbers they are."""
    synth = make_photometry(n_stars=20.0, apertures=(3, 5), ctecorr=("FLC", "FLC"),
                            exptimes={"long": 348}, seed=1)
    ds = synth.photometry
    assert ds.sizes["star"] == 20
    assert ds["aperture"].values.tolist() == [3.0, 5.0]
    assert set(ds["ctecorr"].values) == {"FLC"}
    assert ds.sizes["image"] == len(set(ds["image"].values))  # no image written twice
    assert set(ds["exptime"].values) == {348.0}
