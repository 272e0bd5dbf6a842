from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core import set_initial_no_auth_action_count

from clip_classifier.exceptions import (
    ConfigurationError,
    WeightsAccessDeniedError,
    WeightsFormatError,
    WeightsIntegrityError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
from clip_classifier.head.weights_cache import WeightsCache
from clip_classifier.storage.weights_object import parse_s3_uri, weights_cache_for
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.conftest import MODEL_BUCKET, WEIGHTS_KEY
from tests.helpers import FaultyClient, client_error, encode, small_doc


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(s3: Any, tmp_path: Path, clock: Clock | None = None, uri: str | None = None) -> WeightsCache:
    return weights_cache_for(
        uri or f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}",
        s3=s3,
        cache_dir=tmp_path / "cache",
        refresh_seconds=60,
        clock=clock or Clock(),
    )


def test_first_fetch_downloads_verifies_and_caches_on_disk(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    cache = make_cache(s3, tmp_path)
    head = cache.get()
    assert len(head.classes) == 12
    assert cache.downloads == 1
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == EXAMPLE_WEIGHTS.read_bytes()
    assert not any(f.name.startswith(".partial-") for f in files)


def test_warm_calls_reuse_the_head_without_touching_s3(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    client = FaultyClient(s3)
    cache = make_cache(client, tmp_path)
    first = cache.get()
    for _ in range(50):
        assert cache.get() is first
    assert client.calls == {"head_object": 1, "get_object": 1}


def test_changed_object_is_picked_up_after_the_refresh_interval(
    s3: Any, weights_uri: str, tmp_path: Path
) -> None:
    clock = Clock()
    cache = make_cache(s3, tmp_path, clock)
    old = cache.get()
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=encode(small_doc()))
    clock.now += 30
    assert cache.get() is old  # not due yet
    clock.now += 31
    new = cache.get()
    assert new.version != old.version and new.classes == ("a", "b")
    assert cache.downloads == 2


def test_unchanged_object_is_not_downloaded_again(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    clock = Clock()
    cache = make_cache(s3, tmp_path, clock)
    cache.get()
    clock.now += 3600
    cache.get()
    assert cache.downloads == 1


def test_a_new_process_reuses_the_verified_copy_in_tmp(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    make_cache(s3, tmp_path).get()
    client = FaultyClient(s3)
    second = make_cache(client, tmp_path)
    second.get()
    assert second.downloads == 0 and "get_object" not in client.calls


def test_a_corrupt_cached_file_is_discarded_and_fetched_again(
    s3: Any, weights_uri: str, tmp_path: Path
) -> None:
    make_cache(s3, tmp_path).get()
    (cached,) = (tmp_path / "cache").iterdir()
    cached.write_bytes(cached.read_bytes()[:1000])  # truncated, as by a crash mid-write without rename
    again = make_cache(s3, tmp_path)
    assert len(again.get().classes) == 12
    assert again.downloads == 1
    assert cached.read_bytes() == EXAMPLE_WEIGHTS.read_bytes()


def test_sha_mismatch_is_refused_and_nothing_is_cached(s3: Any, tmp_path: Path) -> None:
    doc = small_doc()
    doc["layers"][0]["bias"][0] = 9.0
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=encode(doc))
    with pytest.raises(WeightsIntegrityError, match=f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}"):
        make_cache(s3, tmp_path).get()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_missing_object_names_the_location(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(
        WeightsNotFoundError, match=f"weights object s3://{MODEL_BUCKET}/{WEIGHTS_KEY} does not exist"
    ):
        make_cache(s3, tmp_path).get()


def test_missing_bucket_is_not_found(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError):
        make_cache(s3, tmp_path, uri="s3://no-such-bucket-here/head.json").get()


def test_no_permission_is_access_denied(aws: None, tmp_path: Path) -> None:
    @set_initial_no_auth_action_count(4)
    def run() -> None:
        admin = boto3.client("s3")
        admin.create_bucket(Bucket=MODEL_BUCKET)
        admin.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=EXAMPLE_WEIGHTS.read_bytes())
        iam = boto3.client("iam")
        iam.create_user(UserName="no-s3")
        key = iam.create_access_key(UserName="no-s3")["AccessKey"]
        denied = boto3.client(
            "s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
        )
        with pytest.raises(WeightsAccessDeniedError, match="no permission to read weights object"):
            make_cache(denied, tmp_path).get()

    run()


def test_transient_failure_on_first_load_is_retryable(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    client = FaultyClient(s3, get_object=[client_error("SlowDown", 503)])
    with pytest.raises(WeightsUnavailableError) as info:
        make_cache(client, tmp_path).get()
    assert info.value.transient


def test_transient_failure_on_refresh_keeps_serving_the_loaded_head(
    s3: Any, weights_uri: str, tmp_path: Path
) -> None:
    clock = Clock()
    client = FaultyClient(s3)
    cache = make_cache(client, tmp_path, clock)
    head = cache.get()
    client.faults["head_object"] = [client_error("InternalError", 500)]
    clock.now += 120
    assert cache.get() is head


def test_deleted_object_on_refresh_is_an_error(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    clock = Clock()
    cache = make_cache(s3, tmp_path, clock)
    cache.get()
    s3.delete_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY)
    clock.now += 120
    with pytest.raises(WeightsNotFoundError):
        cache.get()


def test_full_tmp_still_serves_the_verified_head(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")  # mkdir fails like a full/readonly /tmp
    cache = weights_cache_for(weights_uri, s3=s3, cache_dir=blocker / "sub", refresh_seconds=60)
    assert len(cache.get().classes) == 12


def test_local_path(tmp_path: Path) -> None:
    assert len(weights_cache_for(str(EXAMPLE_WEIGHTS), s3=None, cache_dir=tmp_path).get().classes) == 12
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        weights_cache_for(str(tmp_path / "nope.json"), s3=None, cache_dir=tmp_path).get()
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(WeightsFormatError, match=str(bad)):
        weights_cache_for(str(bad), s3=None, cache_dir=tmp_path).get()


def test_uri_parsing(tmp_path: Path) -> None:
    assert str(parse_s3_uri("s3://b/k/x.json")) == "s3://b/k/x.json"
    assert parse_s3_uri("/opt/weights.json") is None
    with pytest.raises(WeightsNotFoundError):
        parse_s3_uri("s3://bucket-only")
    with pytest.raises(ConfigurationError, match="no S3 client"):
        weights_cache_for("s3://b/k.json", s3=None, cache_dir=tmp_path)


def test_a_new_version_replaces_the_old_copy_on_disk(s3: Any, weights_uri: str, tmp_path: Path) -> None:
    clock = Clock()
    cache = make_cache(s3, tmp_path, clock)
    cache.get()
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=encode(small_doc()))
    clock.now += 120
    cache.get()
    (only,) = (tmp_path / "cache").iterdir()
    assert only.read_bytes() == encode(small_doc())
