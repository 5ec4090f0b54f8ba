"""Configuration as data: defaults, user overrides, and errors naming the key and file."""

from __future__ import annotations

import tomllib

import pytest

from cte import ConfigError, load_config
from cte.config import FitOptions, LossOptions, default_config_path
from cte.flags import STAR_FLAGS, WFC3_DQ, cf_flag_attrs, decode


def test_defaults_match_the_shipped_file():
    with open(default_config_path(), "rb") as fh:
        raw = tomllib.load(fh)
    config = load_config()
    assert config.programs == tuple(raw["monitor"]["programs"])
    assert config.programs[0] == 11924 and config.programs[-1] == 14541
    assert config.flash_levels == (0, 6, 12, 18, 24, 33, 55, 91, 116)
    assert config.photometry.apertures == (3.0, 5.0, 10.0)
    assert config.flux_bins[0] == (250.0, 500.0)
    assert len(config.flux_bins) == 8
    assert set(config.targets) == {"ngc104", "ngc6791", "ngc6583"}
    assert config.targets["ngc6583"].same_chip
    assert config.photometry.dq_mask == 4 | 16 | 128 | 4096 | 8192
    assert config.sources == (str(default_config_path()),)


def test_exclusions_carry_reasons():
    config = load_config()
    exc = config.exclusion_for(12379, "13")
    assert exc is not None and "guide-star" in exc.reason
    assert config.exclusion_for(14012, "05").proposal == 14012
    assert config.exclusion_for(14012, "04") is None
    assert config.exclusion_for(12379, "12") is None


def test_targname_mapping_and_exposure_class():
    config = load_config()
    assert config.target_for("NGC-104") == "ngc104"
    assert config.target_for("ngc 6791") == "ngc6791"
    assert config.target_for("M31") is None
    assert config.exptime_class(60.0) == "short"
    assert config.exptime_class(60.1) == "long"


def test_user_file_overrides_merge_key_by_key(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text(
        "[photometry]\napertures = [4.0, 2.0]\n"
        "[monitor]\nshort_exposure_max = 100.0\n"
        "[[exclude]]\nproposal = 13083\nvisits = []\nreason = 'whole program'\n"
    )
    config = load_config(user)
    assert config.photometry.apertures == (2.0, 4.0)  # sorted
    assert config.photometry.annulus == (14.0, 20.0)  # untouched default
    assert config.short_exposure_max == 100.0
    assert config.programs[0] == 11924
    # arrays replace: the user's exclusion list is the whole list
    assert len(config.exclusions) == 1
    assert config.exclusion_for(13083, "07").reason == "whole program"
    assert config.sources[-1] == str(user)


def test_overrides_mapping():
    config = load_config(overrides={"alignment": {"min_matches": 10}})
    assert config.alignment.min_matches == 10


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[photometry]\napertre = [3.0]\n", r"photometry\.apertre: unknown key"),
        ("[photometry]\napertures = [-3.0]\n", r"photometry\.apertures\[0\]: must be > 0"),
        ("[photometry]\napertures = []\n", r"photometry\.apertures: must be a non-empty sequence"),
        ("[photometry]\nannulus = [20.0, 14.0]\n",
         r"photometry\.annulus: must be \(low, high\) pixel with 0 <= low < high"),
        ("[photometry]\nannulus = [6.0, 24.0]\n", r"photometry\.annulus: inner radius 6.0"),
        ("[photometry]\ncentroid_box = 4\n", r"photometry\.centroid_box: must be an odd"),
        ("[photometry]\ncentroid_method = 'peak'\n",
         r"photometry\.centroid_method: must be one of \['windowed', 'com'\], got 'peak'"),
        ("[photometry]\ndq_mask = [3]\n",
         r"photometry\.dq_mask: 3 is not a single WFC3 DQ bit; known bits are"),
        ("[monitor]\nflux_bins = [[500.0, 250.0]]\n",
         r"monitor\.flux_bins\[0\]: must be \(low, high\) e- with 0 <= low < high"),
        ("[monitor]\nflux_bins = [[0.0, 250.0]]\n",
         r"monitor\.flux_bins\[0\]: low must be > 0 \(e-\), got 0.0"),
        ("[monitor]\nprograms = [1, 1]\n", r"monitor\.programs: must not repeat values"),
        ("[monitor]\nfilters = 'F502N'\n", r"monitor\.filters: must be a sequence"),
        ("[[exclude]]\nproposal = 1\nvisits = ['123']\nreason = 'x'\n", r"exclude\[0\]\.visits"),
        ("[[exclude]]\nproposal = 1\nreason = ' '\n", r"exclude\[0\]\.reason: must say why"),
        ("[[exclude]]\nproposal = 1\n", r"exclude\[0\]\.reason: missing required key"),
        ("[geometry]\nchip_dither_postarg2 = 1.0\n", r"geometry\.chip_dither_postarg2"),
        ("[alignment]\nmin_matches = 2\n", r"alignment\.min_matches: must be an integer >= 3"),
        ("[alignment]\nn_brightest = 0\n",
         r"alignment\.n_brightest: must be an integer >= 1, got 0"),
        ("[alignment]\nfwhm = 'wide'\n", r"alignment\.fwhm: must be a number, got 'wide'"),
        ("[alignment]\nfwhm = inf\n", r"alignment\.fwhm: must be finite, got inf"),
        ("[photometry]\ncrowding_radius = -1.0\n", r"photometry\.crowding_radius: must be >= 0,"),
        ("[targets.NGC104]\ntargnames = ['x']\n", r"targets\.NGC104\.name: must be lowercase"),
        ("[targets.ngc1]\ndescription = 'x'\n", r"targets\.ngc1\.targnames: missing"),
        ("[quality]\nexclude_binned = 'yes'\n",
         r"quality\.exclude_binned: must be True or False, got 'yes'"),
        ("[surprise]\nx = 1\n", r"surprise: unknown section"),
    ],
)
def test_invalid_values_name_key_and_file(tmp_path, text, match):
    user = tmp_path / "bad.toml"
    user.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(user)
    assert str(user) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("[photometry\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_analysis_options_are_validated_and_kept(tmp_path):
    user = tmp_path / "a.toml"
    user.write_text("[analysis.loss]\nsigma = 2.5\nmin_snr = 5\n"
                    "[analysis.fit]\nscale_errors = false\n")
    config = load_config(user)
    assert config.loss == LossOptions(sigma=2.5, min_snr=5.0)  # the other fields: defaults
    assert config.fit == FitOptions(scale_errors=False)


@pytest.mark.parametrize(("toml", "match"), [
    ("[analysis.loss]\nsigma = -1.0", r"analysis\.loss\.sigma: must be > 0, got -1.0"),
    ("[analysis.loss]\nsigma = nan", r"analysis\.loss\.sigma: must be finite"),
    ("[analysis.loss]\nmaxiters = 2.5", r"analysis\.loss\.maxiters: must be an integer"),
    ("[analysis.loss]\nmin_stars = 2", r"analysis\.loss\.min_stars: must be an integer >= 3"),
    ("[analysis.loss]\nmin_stars = \"10\"",
     r"analysis\.loss\.min_stars: must be an integer >= 3, got '10'"),
    ("[analysis.loss]\nbin_by = \"median\"",
     r"analysis\.loss\.bin_by: must be one of \['mean', 'both'\], got 'median'"),
    ("[analysis.loss]\npivot = 180",
     r"analysis\.loss\.pivot: must be one of \['180', 'all', 'none'\], got 180"),
    ("[analysis.loss]\npivot_transfers = 2051",
     r"analysis\.loss\.pivot_transfers: must be in \(0, 2051\), got 2051"),
    ("[analysis.loss]\nmin_snr = 0", r"analysis\.loss\.min_snr: must be > 0"),
    ("[analysis.loss]\nmin_star = 25",
     r"analysis\.loss\.min_star: unknown key; known keys of \[analysis\.loss\]"),
    ("[analysis.fit]\nbins_fitted = \"some\"", r"analysis\.fit\.bins_fitted: must be one of"),
    ("[analysis.fit]\nmin_time_span = -0.5", r"analysis\.fit\.min_time_span: must be >= 0"),
    ("[analysis.fit]\nscale_errors = 1",
     r"analysis\.fit\.scale_errors: must be True or False, got 1"),
    ("[analysis.model]\nx = 1", r"analysis\.model: unknown table \[analysis\.model\]"),
    ("[analysis]\nloss = 3", r"analysis\.loss: must be a table"),
])
def test_invalid_analysis_options_are_refused_at_load(tmp_path, toml, match):
    """Issue 14: bad [analysis.*] values fail when the configuration is loaded,
    naming the file, table and key (not after the photometry has run)."""
    user = tmp_path / "bad.toml"
    user.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=match) as info:
        load_config(user)
    assert str(user) in str(info.value)


def test_bad_analysis_option_stops_a_run_before_photometry(tmp_path, campaign):
    from cte.pipeline import run

    user = tmp_path / "bad.toml"
    user.write_text("[analysis.loss]\nsigma = 0\n")
    with pytest.raises(ConfigError, match=r"analysis\.loss\.sigma: must be > 0"):
        run(campaign.data_dir, campaign.catalogs_dir, tmp_path / "store", tmp_path / "out",
            config=user)
    assert not (tmp_path / "store").exists() and not (tmp_path / "out").exists()


def test_flag_registries():
    bits = [f.bit for f in STAR_FLAGS]
    assert bits == [1 << i for i in range(len(bits))]  # distinct powers of two
    assert decode(1 | 128) == ["off_chip", "crowded"]
    assert decode(4096 | 256, kind="dq") == ["full_well_saturation", "cosmic_ray_drizzle"]
    assert decode(1 << 20)[-1] == "unknown_bits_1048576"
    attrs = cf_flag_attrs()
    assert list(attrs["flag_masks"]) == bits
    assert attrs["flag_meanings"].split() == [f.name for f in STAR_FLAGS]
    assert len({f.bit for f in WFC3_DQ}) == len(WFC3_DQ)
    with pytest.raises(ValueError, match=r"^kind must be one of \['dq', 'star'\], got 'nope'$"):
        decode(1, kind="nope")


def test_analysis_rules_are_shared_by_the_file_and_the_functions(tmp_path):
    """One declaration (the options dataclasses): a value is refused alike from a
    configuration file and from the options of measure_loss or fit_model."""
    import xarray as xr

    from cte import fit_model, measure_loss
    from cte.datasets._synthphot import make_photometry

    user = tmp_path / "a.toml"
    user.write_text("[analysis.loss]\nmin_stars = 2\n[analysis.fit]\nscale_errors = 1\n")
    with pytest.raises(ConfigError, match=r"analysis\.loss\.min_stars: must be an integer >= 3, "
                                          r"got 2$"):
        load_config(user)
    with pytest.raises(ValueError, match=r"^min_stars must be an integer >= 3, got 2$"):
        measure_loss(make_photometry(n_stars=10).photometry, loss=LossOptions(min_stars=2))
    user.write_text("[analysis.fit]\nscale_errors = 1\n")
    with pytest.raises(ConfigError, match=r"analysis\.fit\.scale_errors: must be True or "
                                          r"False, got 1$"):
        load_config(user)
    with pytest.raises(TypeError, match=r"^scale_errors must be True or False, got 1$"):
        fit_model(xr.Dataset(), fit=FitOptions(scale_errors=1))
