"""Upload → S3 event → the real upload function → DynamoDB, on the moto server with the tiny ONNX model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.jobs.redrive import redrive
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT, TINY_MODEL_DIR
from clip_local.stack import LocalStack, local_stack
from tests.corpus.images import png_bomb
from tests.helpers import FaultyClient, SpyBody, client_error, predict_one

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
GOLDEN = json.loads((TINY_MODEL_DIR / "golden_embeddings.json").read_text())
MAX_BYTES = 3_000_000
# int8 ONNX + our preprocessing vs torch fp32 + HF preprocessing, after the head (probabilities).
PIPELINE_TOLERANCE = 5e-5  # measured 7.8e-6 (fp32 model: 2.9e-7)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(extra_env={"MAX_IMAGE_BYTES": str(MAX_BYTES)}) as running:
        yield running


@pytest.fixture(scope="module")
def head() -> Head:
    return Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


@pytest.fixture
def classifier_s3(stack: LocalStack) -> Iterator[FaultyClient]:
    """Swap the upload function's S3 client for one we can inject faults into, then restore it."""
    source = stack.upload.function().classifier.source
    real = source.s3
    faulty = FaultyClient(real)
    source.s3 = faulty  # type: ignore[assignment]
    yield faulty
    source.s3 = real


def pid(stack: LocalStack, name: str) -> str:
    return picture_id_for_key(stack.key_prefix + name, stack.key_prefix)


def dlq_messages(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return [{"count": int(attrs["Attributes"]["ApproximateNumberOfMessages"])}]


@pytest.mark.parametrize("name", sorted(GOLDEN["images"]))
def test_every_fixture_is_classified_like_the_golden_pipeline(
    stack: LocalStack, head: Head, name: str
) -> None:
    assert stack.upload_file(name, (FIXTURES / name).read_bytes())
    record = stack.result(pid(stack, name))
    assert record is not None and record.status == "classified", record
    probs = np.array([record.probabilities[c] for c in head.classes])
    assert len(probs) == 12 and abs(probs.sum() - 1) <= 1e-6
    expected = predict_one(head, GOLDEN["images"][name]["embedding"])
    assert np.abs(probs - np.array(expected.probabilities)).max() <= PIPELINE_TOLERANCE
    assert record.head_version == head.version
    assert record.embedder_version == GOLDEN["int8_model_sha256"]
    assert record.source.key == stack.key_prefix + name and record.source.etag


@pytest.mark.parametrize(
    ("name", "payload", "code"),
    [
        ("empty.jpg", b"", "image_empty"),
        ("text.jpg", b"this is a text file, not a JPEG", "image_unsupported"),
        ("truncated.jpg", (FIXTURES / "landscape_rgb.jpg").read_bytes()[:5000], "image_corrupt"),
        ("truncated.png", (FIXTURES / "transparent_rgba.png").read_bytes()[:3000], "image_corrupt"),
        ("bomb.png", png_bomb(30_000, 30_000), "image_too_many_pixels"),
        ("huge.jpg", b"\xff\xd8\xff" + b"\0" * (MAX_BYTES + 1), "image_too_large"),
    ],
)
def test_bad_uploads_leave_a_failed_item_and_are_not_retried(
    stack: LocalStack, name: str, payload: bytes, code: str
) -> None:
    before = len(stack.invoker.attempts)
    assert stack.upload_file(name, payload)
    record = stack.result(pid(stack, name))
    assert record is not None and record.status == "failed"
    assert record.error is not None and record.error.code == code and record.error.message
    assert stack.invoker.attempts[before:] == [1]  # handled on the first attempt: no retry storm


def test_oversized_object_is_refused_without_downloading_it(
    stack: LocalStack, classifier_s3: FaultyClient
) -> None:
    bodies: list[SpyBody] = []

    def spy(response: dict[str, Any]) -> dict[str, Any]:
        bodies.append(SpyBody(response["Body"]))
        return {**response, "Body": bodies[-1]}

    classifier_s3.responses["get_object"] = [spy]
    stack.upload_file("big2.jpg", b"\xff\xd8\xff" + b"\0" * (MAX_BYTES + 10))
    # One request, refused from its ContentLength: the body is closed unread.
    assert classifier_s3.calls == {"get_object": 1}
    assert bodies[0].read_bytes == 0 and bodies[0].closed
    record = stack.result(pid(stack, "big2.jpg"))
    assert record is not None and record.error is not None and record.error.code == "image_too_large"


@pytest.mark.parametrize("name", ["été photo.jpg", "a+b c.jpg", "dir/sub dir/x.png", "日本語.webp"])
def test_awkward_keys_are_url_decoded_and_classified(stack: LocalStack, name: str) -> None:
    src = {"jpg": "landscape_rgb.jpg", "png": "small_rgb.png", "webp": "photo.webp"}[name.rsplit(".", 1)[1]]
    assert stack.upload_file(name, (FIXTURES / src).read_bytes())
    record = stack.result(pid(stack, name))
    assert record is not None and record.status == "classified"
    assert record.source.key == stack.key_prefix + name


def test_keys_outside_the_prefix_or_suffixes_are_ignored(stack: LocalStack) -> None:
    data = (FIXTURES / "small_rgb.png").read_bytes()
    stack.uploads.put("elsewhere/small.png", data)
    stack.upload_file("notes.txt", data)
    assert stack.result(picture_id_for_key("elsewhere/small.png", stack.key_prefix)) is None
    assert stack.result(pid(stack, "notes.txt")) is None


def test_duplicate_delivery_is_absorbed(stack: LocalStack) -> None:
    event = stack.uploads.put_event(stack.key_prefix + "dup.jpg", (FIXTURES / "tall_rgb.jpg").read_bytes())
    assert stack.invoker.invoke(event)
    first = stack.result(pid(stack, "dup.jpg"))
    assert stack.invoker.invoke(event)
    again = stack.result(pid(stack, "dup.jpg"))
    assert first is not None and again is not None and again.updated_at == first.updated_at


def test_out_of_order_delivery_never_overwrites_the_newer_result(stack: LocalStack) -> None:
    key = stack.key_prefix + "order.jpg"
    older = stack.uploads.put_event(key, (FIXTURES / "landscape_rgb.jpg").read_bytes())
    newer = stack.uploads.put_event(key, (FIXTURES / "cmyk.jpg").read_bytes())
    stack.invoker.invoke(newer)
    stack.invoker.invoke(older)  # late
    record = stack.result(pid(stack, "order.jpg"))
    assert record is not None and record.source.etag == newer["Records"][0]["s3"]["object"]["eTag"]


def test_delete_marks_the_result_and_a_late_create_cannot_resurrect_it(stack: LocalStack) -> None:
    key = stack.key_prefix + "gone.jpg"
    created = stack.uploads.put_event(key, (FIXTURES / "landscape_rgb.jpg").read_bytes())
    removed = stack.uploads.delete_event(key)
    stack.invoker.invoke(removed)
    stack.invoker.invoke(created)  # the create notification arrives after the delete
    record = stack.result(pid(stack, "gone.jpg"))
    assert record is not None and record.status == "deleted" and record.expires_at


def test_transient_fault_is_retried_and_then_succeeds(stack: LocalStack, classifier_s3: FaultyClient) -> None:
    classifier_s3.faults["get_object"] = [client_error("SlowDown", 503, "GetObject")]
    before = len(stack.invoker.attempts)
    assert stack.upload_file("flaky.jpg", (FIXTURES / "landscape_rgb.jpg").read_bytes())
    assert stack.invoker.attempts[before:] == [2]
    record = stack.result(pid(stack, "flaky.jpg"))
    assert record is not None and record.status == "classified"


def test_persistent_fault_goes_to_the_dlq_and_is_redriven(
    stack: LocalStack, classifier_s3: FaultyClient
) -> None:
    sqs = stack.client("sqs")
    classifier_s3.faults["get_object"] = [client_error("InternalError", 500, "GetObject")] * 3
    assert not stack.upload_file("poison.jpg", (FIXTURES / "landscape_rgb.jpg").read_bytes())
    assert stack.result(pid(stack, "poison.jpg")) is None  # not a made-up failure: the event is parked
    report = redrive(sqs, stack.dead_letter_queue_url, stack.invoker.invoke)
    assert (report.replayed, report.failed) == (1, 0)
    record = stack.result(pid(stack, "poison.jpg"))
    assert record is not None and record.status == "classified"
    assert (
        sqs.receive_message(QueueUrl=stack.dead_letter_queue_url, WaitTimeSeconds=0).get("Messages") is None
    )


def test_a_batch_event_stores_the_good_records_before_retrying_the_bad_one(
    stack: LocalStack, classifier_s3: FaultyClient
) -> None:
    good = stack.uploads.put_event(stack.key_prefix + "batch-ok.jpg", (FIXTURES / "cmyk.jpg").read_bytes())
    bad = stack.uploads.put_event(stack.key_prefix + "batch-flaky.jpg", (FIXTURES / "cmyk.jpg").read_bytes())
    classifier_s3.faults["get_object"] = [client_error("SlowDown", 503, "GetObject")]
    event = {"Records": bad["Records"] + good["Records"]}
    assert stack.invoker.invoke(event)
    assert stack.invoker.attempts[-1] == 2
    for name in ("batch-ok.jpg", "batch-flaky.jpg"):
        record = stack.result(pid(stack, name))
        assert record is not None and record.status == "classified"


def test_logs_hold_no_image_bytes_embeddings_or_probabilities(
    stack: LocalStack, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import base64

    from clip_classifier.image.preprocess import Preprocessor
    from clip_classifier.model.embedder import Embedder

    data = (FIXTURES / "photo.webp").read_bytes()
    capfd.readouterr()
    assert stack.upload_file("logged.webp", data)
    assert stack.upload_file("logged-bad.jpg", data[:100])
    records = [r for r in caplog.records if r.name == "clip-classifier"]
    assert any(r.getMessage() == "record processed" for r in records)  # the logs were captured
    out = "".join(capfd.readouterr()) + " ".join(str(r.__dict__) for r in records)
    embedder = Embedder(TINY_MODEL_DIR / "int8" / "model.onnx")
    embedding = embedder.embed(Preprocessor(embedder.manifest.transform)(data).pixels)[0]
    for value in embedding[:32]:
        assert f"{value:.6f}"[:8] not in out
    assert base64.b64encode(data[200:230]).decode()[:24] not in out and data[200:230].hex()[:24] not in out
    record = stack.result(pid(stack, "logged.webp"))
    for probability in list(record.probabilities.values())[:5]:
        assert str(probability)[:9] not in out
