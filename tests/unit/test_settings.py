from __future__ import annotations

from pathlib import Path

import pytest

from clip_classifier.exceptions import ConfigurationError
from clip_classifier.settings import load_settings


def test_environment_is_read_and_typed() -> None:
    cfg = load_settings(
        {
            "RESULTS_TABLE": "t",
            "WEIGHTS_REFRESH_SECONDS": "5",
            "KEY_SUFFIXES": ".JPG, .png",
            "MAX_IMAGE_PIXELS": "100",
        }
    )
    assert cfg.results_table == "t"
    assert cfg.weights_refresh_seconds == 5.0
    assert cfg.key_suffixes == (".jpg", ".png")
    assert cfg.max_image_pixels == 100


def test_explicit_arguments_beat_the_environment() -> None:
    cfg = load_settings({"RESULTS_TABLE": "from-env"}, results_table="explicit", cache_dir=Path("/x"))
    assert cfg.results_table == "explicit" and cfg.cache_dir == Path("/x")


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="MAX_BATCH_ITEMS"):
        load_settings({"MAX_BATCH_ITEMS": "many"})
    with pytest.raises(ConfigurationError, match="PREPROCESS_MODE"):
        load_settings({"PREPROCESS_MODE": "magic"})


def test_require_lists_what_is_missing() -> None:
    with pytest.raises(ConfigurationError, match="RESULTS_TABLE, WEIGHTS_URI"):
        load_settings({}).require("results_table", "weights_uri")
