from __future__ import annotations

from pathlib import Path

import pytest

from clip_classifier.exceptions import ConfigurationError
from clip_classifier.settings import DEFAULT_CACHE_DIR, ScoreSettings, UploadSettings, load_settings

UPLOAD = {"RESULTS_TABLE": "t", "WEIGHTS_URI": "s3://b/k", "MODEL_PATH": "/m/model.onnx"}


def test_environment_is_read_and_typed() -> None:
    cfg = load_settings(
        UploadSettings,
        {**UPLOAD, "WEIGHTS_REFRESH_SECONDS": "5", "KEY_SUFFIXES": ".JPG, .png", "MAX_IMAGE_PIXELS": "100"},
    )
    assert cfg.results_table == "t" and cfg.model_path == Path("/m/model.onnx")
    assert cfg.weights_refresh_seconds == 5.0
    assert cfg.key_suffixes == (".jpg", ".png")
    assert cfg.max_image_pixels == 100 and cfg.cache_dir == DEFAULT_CACHE_DIR


def test_the_process_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        **UPLOAD,
        "EMBEDDER_MANIFEST": "m.json",
        "CORS_ALLOW_ORIGINS": "https://a, https://b",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEY_PREFIX", "")  # empty counts as unset (template parameters default to "")
    cfg = load_settings(ScoreSettings)
    assert cfg.cors_allow_origins == ("https://a", "https://b") and cfg.embedder_manifest == Path("m.json")
    assert load_settings(UploadSettings).key_prefix == ""


def test_an_explicit_mapping_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PREFIX", "from-env/")
    assert load_settings(UploadSettings, UPLOAD).key_prefix == ""


def test_each_function_needs_only_its_own_variables() -> None:
    with pytest.raises(ConfigurationError, match="MODEL_PATH is required"):
        load_settings(UploadSettings, {"RESULTS_TABLE": "t", "WEIGHTS_URI": "s3://b/k"})
    with pytest.raises(ConfigurationError, match="EMBEDDER_MANIFEST is required"):
        load_settings(ScoreSettings, {"RESULTS_TABLE": "t", "WEIGHTS_URI": "s3://b/k"})


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="MAX_BATCH_ITEMS"):
        load_settings(ScoreSettings, {**UPLOAD, "EMBEDDER_MANIFEST": "m", "MAX_BATCH_ITEMS": "many"})
    with pytest.raises(ConfigurationError, match="PREPROCESS_MODE"):
        load_settings(UploadSettings, {**UPLOAD, "PREPROCESS_MODE": "magic"})


def test_every_missing_variable_is_listed() -> None:
    with pytest.raises(ConfigurationError, match="RESULTS_TABLE is required; WEIGHTS_URI is required"):
        load_settings(UploadSettings, {"MODEL_PATH": "m"})
