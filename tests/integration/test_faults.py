"""Faults injected into the real flow (moto server, tiny model): the end state is always right —
retried and stored, or a clear failure / a dead-lettered event that redrive recovers; never silently lost."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.jobs.redrive import redrive
from clip_classifier.model.embedder import Embedder
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT, TINY_MODEL_DIR
from clip_local.stack import MODEL_BUCKET, WEIGHTS_KEY, LocalStack, local_stack
from tests.helpers import (
    FaultyClient,
    break_body,
    client_error,
    encode,
    predict_one,
    small_doc,
    truncate_body,
)

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
IMAGE = (FIXTURES / "landscape_rgb.jpg").read_bytes()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # Refresh the weights on every invocation so replacing the object takes effect at once.
    with local_stack(extra_env={"WEIGHTS_REFRESH_SECONDS": "0"}) as running:
        yield running


@pytest.fixture
def faulty(stack: LocalStack) -> Iterator[dict[str, FaultyClient]]:
    """Wrap the upload function's S3 and DynamoDB clients so faults can be queued per operation."""
    classifier = stack.upload.function().classifier
    source, store = classifier.source, classifier.store
    real_s3, real_db = source.s3, store.client
    wrapped = {"s3": FaultyClient(real_s3), "dynamodb": FaultyClient(real_db)}
    source.s3 = wrapped["s3"]  # type: ignore[assignment]
    store.client = wrapped["dynamodb"]  # type: ignore[assignment]
    yield wrapped
    source.s3, store.client = real_s3, real_db


def item(stack: LocalStack, name: str) -> Any:
    return stack.result(picture_id_for_key(stack.key_prefix + name, stack.key_prefix))


def dlq_count(stack: LocalStack) -> int:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


TRANSIENT = {
    "SlowDown 503": lambda op: client_error("SlowDown", 503, op),
    "InternalError 500": lambda op: client_error("InternalError", 500, op),
    "read timeout": lambda op: ReadTimeoutError(endpoint_url="http://s3"),
    "connect timeout": lambda op: ConnectTimeoutError(endpoint_url="http://s3"),
    "connection refused": lambda op: EndpointConnectionError(endpoint_url="http://s3"),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_s3_faults_are_retried_and_the_image_is_stored(
    stack: LocalStack, faulty: dict[str, FaultyClient], fault: str
) -> None:
    """The upload reads each image with one GetObject (no HeadObject first): its faults are the path's."""
    name = f"s3-get-{fault.replace(' ', '-')}.jpg"
    faulty["s3"].faults["get_object"] = [TRANSIENT[fault]("GetObject")]
    assert stack.upload_file(name, IMAGE)
    assert stack.invoker.attempts[-1] == 2
    assert item(stack, name).status == "classified"


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        ("reset-at-start.jpg", break_body(0.0, ConnectionResetError(104, "Connection reset by peer"))),
        ("timeout-mid-body.jpg", break_body(0.5, ReadTimeoutError(endpoint_url="http://s3"))),
        ("reset-mid-body.png", break_body(0.5, ConnectionResetError(104, "Connection reset by peer"))),
        ("short-body.jpg", truncate_body(0.6)),
        ("short-by-a-little.jpg", truncate_body(0.999)),
    ],
)
def test_a_transfer_broken_mid_body_is_retried_not_recorded_as_a_bad_image(
    stack: LocalStack, faulty: dict[str, FaultyClient], name: str, transform: Any
) -> None:
    """Decoding reads the live body; a transfer that breaks part-way must not look like a corrupt file."""
    data = IMAGE if name.endswith(".jpg") else (FIXTURES / "transparent_rgba.png").read_bytes()
    faulty["s3"].responses["get_object"] = [transform]
    assert stack.upload_file(name, data)
    assert stack.invoker.attempts[-1] == 2
    assert item(stack, name).status == "classified"


def test_dynamodb_throttling_is_retried(stack: LocalStack, faulty: dict[str, FaultyClient]) -> None:
    faulty["dynamodb"].faults["put_item"] = [
        client_error("ProvisionedThroughputExceededException", 400, "PutItem"),
        client_error("ThrottlingException", 400, "PutItem"),
    ]
    assert stack.upload_file("throttled.jpg", IMAGE)
    assert stack.invoker.attempts[-1] == 3
    assert item(stack, "throttled.jpg").status == "classified"


def test_concurrent_conditional_writes_keep_the_newest(stack: LocalStack) -> None:
    """16 writers race on one key with shuffled sequencers; exactly the newest must win, every time."""
    from concurrent.futures import ThreadPoolExecutor

    from clip_classifier.ingest.s3_event import normalize_sequencer
    from clip_classifier.storage.result_item import ClassificationItem, SourceInfo

    store = stack.results
    for round_no in range(5):
        key = f"race-{round_no}"
        sequencers = [f"{(round_no * 100 + i):X}" for i in range(16)]
        np.random.default_rng(round_no).shuffle(sequencers)
        records = [
            ClassificationItem.failed(
                key,
                code="test",
                message=seq,
                source=SourceInfo(type="s3", key=key),
                sequencer=normalize_sequencer(seq),
            )
            for seq in sequencers
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            won = list(pool.map(store.put_if_newer, records))
        final = store.get(key)
        newest = max(sequencers, key=lambda h: int(h, 16))
        assert final is not None and final.error is not None and final.error.message == newest
        assert sum(won) >= 1


def test_persistent_throttling_goes_to_the_dlq_and_redrive_recovers(
    stack: LocalStack, faulty: dict[str, FaultyClient]
) -> None:
    faulty["dynamodb"].faults["put_item"] = [client_error("ThrottlingException", 400, "PutItem")] * 3
    before = dlq_count(stack)
    assert not stack.upload_file("throttled-hard.jpg", IMAGE)
    assert dlq_count(stack) == before + 1
    assert item(stack, "throttled-hard.jpg") is None
    report = redrive(stack.client("sqs"), stack.dead_letter_queue_url, stack.invoker.invoke)
    assert report.failed == 0 and report.replayed >= 1
    assert item(stack, "throttled-hard.jpg").status == "classified"


def expected_probabilities(head: Head, data: bytes) -> np.ndarray:
    embedder = Embedder(TINY_MODEL_DIR / "int8" / "model.onnx")
    pixels = Preprocessor(embedder.manifest.transform)(data).pixels
    # The upload path scores the stored embedding (int8), so the expectation goes through the same codec.
    _, stored = embedding_codec.round_trip(embedder.embed(pixels))
    return np.asarray(predict_one(head, stored[0]).probabilities)


def test_weights_replaced_between_invocations(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    old = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    new_doc = json.loads(EXAMPLE_WEIGHTS.read_text())
    new_doc["layers"][4]["bias"] = [
        b + (0.5 if i % 2 else -0.5) for i, b in enumerate(new_doc["layers"][4]["bias"])
    ]
    from tests.helpers import rehash

    new_raw = encode(rehash(new_doc))
    new = Head(parse_weights(new_raw))
    try:
        assert stack.upload_file("before.jpg", IMAGE)
        s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=new_raw)
        assert stack.upload_file("after.jpg", IMAGE)
        before, after = item(stack, "before.jpg"), item(stack, "after.jpg")
        assert before.head_version == old.version and after.head_version == new.version
        for record, head in ((before, old), (after, new)):
            got = np.array([record.probabilities[c] for c in head.classes])
            assert np.abs(got - expected_probabilities(head, IMAGE)).max() <= 1e-6  # each item is one head's
    finally:
        s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=EXAMPLE_WEIGHTS.read_bytes())
        assert stack.upload_file("restored.jpg", IMAGE)


def test_a_corrupt_weights_replacement_is_refused_loudly_and_recovered(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    corrupt = small_doc()
    corrupt["layers"][0]["bias"][0] = 42.0  # numbers changed, declared sha256 not
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=encode(corrupt))
    before = dlq_count(stack)
    try:
        assert not stack.upload_file("during-corrupt.jpg", IMAGE)
        assert dlq_count(stack) == before + 1  # parked, never scored with unverified weights
        assert item(stack, "during-corrupt.jpg") is None
    finally:
        s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=EXAMPLE_WEIGHTS.read_bytes())
    redrive(stack.client("sqs"), stack.dead_letter_queue_url, stack.invoker.invoke)
    assert item(stack, "during-corrupt.jpg").status == "classified"


def test_a_corrupt_weights_copy_in_tmp_is_replaced(stack: LocalStack) -> None:
    cache = stack.upload.function().settings.cache_dir
    assert stack.upload_file("warm.jpg", IMAGE)
    for cached in cache.glob("weights-*.json"):
        cached.write_bytes(cached.read_bytes()[:500])
    stack.upload.restart()  # a new process in the same execution environment: memory gone, /tmp kept
    assert stack.upload_file("after-crash.jpg", IMAGE)
    assert item(stack, "after-crash.jpg").status == "classified"
    (current,) = cache.glob("weights-*.json")  # rewritten, and older versions are gone
    assert parse_weights(current.read_bytes())


def test_full_or_unwritable_tmp_still_classifies(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    with local_stack(extra_env={"CACHE_DIR": str(blocked / "cache")}) as own:
        assert own.upload_file("no-tmp.jpg", IMAGE)
        record = own.result("no-tmp.jpg")
        assert record is not None and record.status == "classified"


def test_a_tampered_model_refuses_to_start_and_events_wait_in_the_dlq(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(TINY_MODEL_DIR / "int8", model_dir)
    raw = bytearray((model_dir / "model.onnx").read_bytes())
    raw[-64] ^= 0xFF
    (model_dir / "model.onnx").write_bytes(bytes(raw))
    with local_stack(model_dir=model_dir) as own:
        assert not own.upload_file("tampered.jpg", IMAGE)
        assert own.result("tampered.jpg") is None  # no result from an unverified model, no fake failure
        assert dlq_count(own) == 1
        message = own.client("sqs").receive_message(QueueUrl=own.dead_letter_queue_url)["Messages"][0]
        assert "sha256" in json.loads(message["Body"])["responsePayload"]["errorMessage"]


def test_weights_replaced_while_instances_are_classifying(tmp_path: Path) -> None:
    """3 worker processes (Lambda instances) classify 40 uploads; the head is replaced mid-stream.
    Every item must be entirely one head's result, and the new head must take over."""
    from concurrent.futures import as_completed

    from bench.load_uploads import small_image
    from clip_local.workers import invoke, worker_pool
    from tests.helpers import rehash

    old = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    doc = json.loads(EXAMPLE_WEIGHTS.read_text())
    doc["layers"][4]["bias"] = [b + (0.7 if i % 3 else -0.7) for i, b in enumerate(doc["layers"][4]["bias"])]
    new_raw = encode(rehash(doc))
    new = Head(parse_weights(new_raw))
    heads = {old.version: old, new.version: new}
    images = {f"live/{i:03d}.png": small_image(9000 + i) for i in range(40)}

    with local_stack(extra_env={"WEIGHTS_REFRESH_SECONDS": "0"}) as own:
        events = [own.uploads.put_event(own.key_prefix + name, data) for name, data in images.items()]
        with worker_pool(
            3, own.upload_env, own.aws.endpoint, own.dead_letter_queue_url, 2, str(tmp_path)
        ) as pool:
            futures = [pool.submit(invoke, e) for e in events]
            for done, future in enumerate(as_completed(futures), 1):
                assert future.result()[0]
                if done == 10:
                    own.client("s3").put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=new_raw)
        versions = []
        embedder = Embedder(TINY_MODEL_DIR / "int8" / "model.onnx")
        pre = Preprocessor(embedder.manifest.transform)
        for name, data in images.items():
            record = own.result(picture_id_for_key(own.key_prefix + name, own.key_prefix))
            assert record is not None and record.status == "classified"
            head = heads[record.head_version]  # a known, verified version and nothing else
            _, stored = embedding_codec.round_trip(embedder.embed(pre(data).pixels))
            expected = predict_one(head, stored[0]).probabilities
            got = [record.probabilities[c] for c in head.classes]
            assert np.abs(np.array(got) - np.array(expected)).max() <= 1e-6
            versions.append(record.head_version)
        assert versions.count(old.version) >= 10 and new.version in versions
