"""The upload function's handler fed the same event files ``sam local invoke -e`` uses (moto in-process)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from clip_classifier.exceptions import ConfigurationError, InvocationTimeoutError, ModelNotFoundError
from clip_classifier.jobs.redrive import main as redrive_main
from clip_classifier.jobs.redrive import original_event
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.wiring import UploadFunction
from clip_local.apigw import LambdaContext
from clip_local.handlers import load_function
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR
from clip_local.template import create_bucket, create_queue, load_template
from tests.conftest import TABLE, build_upload, function_env
from tests.helpers import event_bus_queue, load_event

BUCKET = "clip-uploads-local"  # the bucket named in infra/events/s3_*.json
KEY = "uploads/sample photo.jpg"  # "uploads/sample+photo.jpg" URL-decoded


@pytest.fixture
def upload_env(dynamodb: Any, weights_uri: str) -> Any:
    s3 = boto3.client("s3")
    create_bucket(s3, BUCKET)
    return s3


@pytest.fixture
def upload(upload_env: Any, weights_uri: str, tmp_path: Path) -> UploadFunction:
    return build_upload(tmp_path, WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET)


@pytest.fixture
def invoke(upload: UploadFunction) -> Any:
    handler = load_function("classify_upload").create_handler(upload)
    return lambda event: handler(event, LambdaContext())


def created_event(s3: Any, data: bytes) -> dict[str, Any]:
    put = s3.put_object(Bucket=BUCKET, Key=KEY, Body=data)
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"].update(eTag=put["ETag"].strip('"'), size=len(data))
    return event


def test_created_then_removed_event_files(upload_env: Any, upload: UploadFunction, invoke: Any) -> None:
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    assert invoke(created_event(upload_env, data)) == {"records": 1, "outcomes": {"classified": 1}}
    store = upload.classifier.store
    picture_id = picture_id_for_key(KEY, "uploads/")
    item = store.get(picture_id)
    assert item is not None and item.status == "classified" and item.source.key == KEY
    assert invoke(load_event("s3_object_removed.json")) == {"records": 1, "outcomes": {"deleted": 1}}
    item = store.get(picture_id)
    assert item is not None and item.status == "deleted"


def test_the_committed_event_unchanged_is_superseded_not_misclassified(
    upload_env: Any, upload: UploadFunction, invoke: Any
) -> None:
    upload_env.put_object(Bucket=BUCKET, Key=KEY, Body=b"other content")  # ETag differs from the event's
    assert invoke(load_event("s3_object_created.json"))["outcomes"] == {"superseded": 1}
    assert upload.classifier.store.get(picture_id_for_key(KEY, "uploads/")) is None


def test_missing_model_is_a_clear_error_not_a_fallback(
    upload_env: Any, weights_uri: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match="model file /nonexistent/model.onnx does not exist"):
        build_upload(tmp_path, WEIGHTS_URI=weights_uri, MODEL_PATH="/nonexistent/model.onnx")


def test_the_deployed_entry_point_builds_from_the_environment_at_cold_start(
    upload_env: Any, weights_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lambda_handler`` reads the template's variables once per container, then reuses what it built."""
    app = load_function("classify_upload")
    app.lambda_handler.reset()
    env = function_env(
        "ClassifyUploadFunction",
        WEIGHTS_URI=weights_uri,
        CACHE_DIR=str(tmp_path / "cache"),
        MODEL_PATH=str(TINY_MODEL_DIR / "int8" / "model.onnx"),
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        with pytest.raises(ConfigurationError, match="RESULTS_TABLE is required"):
            app.lambda_handler(load_event("s3_object_removed.json"), LambdaContext())
        monkeypatch.setenv("RESULTS_TABLE", TABLE)
        data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
        event = created_event(upload_env, data)
        assert app.lambda_handler(event, LambdaContext())["outcomes"] == {"classified": 1}
        first = app.lambda_handler.handler()
        assert app.lambda_handler(event, LambdaContext())["outcomes"] == {"duplicate": 1}
        assert app.lambda_handler.handler() is first  # built once per container
    finally:
        app.lambda_handler.reset()


def test_redrive_cli_replays_destination_records(aws: None) -> None:
    sqs = boto3.client("sqs")
    url = create_queue(sqs, "dlq")
    event = load_event("s3_object_created.json")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"requestPayload": event, "responsePayload": {}}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))  # a plain DLQ holds the event itself
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    seen: list[dict[str, Any]] = []
    assert redrive_main(["--queue-url", url], invoke=seen.append, sqs=sqs) == 0
    assert seen == [event, event]
    assert original_event("not json") is None


def test_dockerfile_copies_what_exists_and_no_torch() -> None:
    dockerfile = (REPO_ROOT / "functions" / "classify_upload" / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM public.ecr.aws/lambda/python:3.12" in dockerfile
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile, flags=re.M))
    for source in re.findall(r"^COPY (?!\$\{MODEL_DIR\})(\S+)", dockerfile, flags=re.M):
        source = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], source)
        assert (REPO_ROOT / source).exists(), source
    # The manifest must land beside the model (the embedder reads model.onnx's sibling manifest.json), and
    # the environment must point at what was copied.
    assert "${MODEL_DIR}/model.onnx ${MODEL_DIR}/manifest.json ${LAMBDA_TASK_ROOT}/model/" in dockerfile
    assert "MODEL_PATH=${LAMBDA_TASK_ROOT}/model/model.onnx" in dockerfile
    assert "COPY ${WEIGHTS_FILE} ${LAMBDA_TASK_ROOT}/weights/head.json" in dockerfile
    assert "WEIGHTS_URI=${LAMBDA_TASK_ROOT}/weights/head.json" in dockerfile
    # Deployed, the stack's WEIGHTS_URI (the registry's active head) overrides the image's default head.
    assert load_template()["Globals"]["Function"]["Environment"]["Variables"]["WEIGHTS_URI"] == {
        "Fn::Sub": "s3://${HeadsBucket}/active/head.json"
    }
    text = (REPO_ROOT / "functions" / "classify_upload" / "requirements.txt").read_text()
    requirements = [
        line.split(">")[0].split("=")[0] for line in text.splitlines() if line and not line.startswith("#")
    ]
    assert "torch" not in requirements and "onnxruntime" in requirements
    metadata = load_template()["Resources"]["ClassifyUploadFunction"]["Metadata"]
    assert Path(REPO_ROOT / metadata["Dockerfile"]).exists() and metadata["DockerContext"] == "."


def test_the_s3_test_event_is_acknowledged(invoke: Any) -> None:
    assert invoke(load_event("s3_test_event.json")) == {"records": 0, "outcomes": {}}


def test_a_malformed_record_is_skipped_without_stopping_the_others(
    upload_env: Any, upload: UploadFunction, invoke: Any, caplog: pytest.LogCaptureFixture
) -> None:
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    good = created_event(upload_env, data)["Records"][0]
    no_sequencer = json.loads(json.dumps(good))
    del no_sequencer["s3"]["object"]["sequencer"]
    oversize = json.loads(json.dumps(good))
    oversize["s3"]["object"]["sequencer"] = "F" * 41
    result = invoke({"Records": [no_sequencer, oversize, good]})
    assert result == {"records": 3, "outcomes": {"malformed": 2, "classified": 1}}
    assert sum(r.getMessage() == "malformed record skipped" for r in caplog.records) == 2
    item = upload.classifier.store.get(picture_id_for_key(KEY, "uploads/"))
    assert item is not None and item.status == "classified"


def test_an_event_for_another_bucket_is_ignored_with_a_warning(
    upload_env: Any, upload: UploadFunction, invoke: Any, caplog: pytest.LogCaptureFixture
) -> None:
    event = load_event("s3_object_removed.json")
    event["Records"][0]["s3"]["bucket"]["name"] = "someone-elses-bucket"
    assert invoke(event)["outcomes"] == {"ignored": 1}
    assert any(r.getMessage() == "event for another bucket ignored" for r in caplog.records)
    assert upload.classifier.store.get(picture_id_for_key(KEY, "uploads/")) is None


def test_an_image_over_its_cpu_budget_is_failed_as_too_complex(
    upload_env: Any, weights_uri: str, tmp_path: Path
) -> None:
    # A budget no decode can meet: the real pipeline stops at its first check and records why.
    function = build_upload(
        tmp_path, WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET, MAX_DECODE_SECONDS="1e-9"
    )
    handler = load_function("classify_upload").create_handler(function)
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    result = handler(created_event(upload_env, data), LambdaContext())
    assert result["outcomes"] == {"failed": 1}
    item = function.classifier.store.get(picture_id_for_key(KEY, "uploads/"))
    assert item is not None and item.error is not None
    assert item.error.code == "image_too_complex"
    assert "of CPU" in item.error.message


def test_a_record_without_time_left_is_retried_not_failed(upload_env: Any, upload: UploadFunction) -> None:
    handler = load_function("classify_upload").create_handler(upload)
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    # Less remaining time than the handler keeps back for embedding and storing: nothing is started.
    event = created_event(upload_env, data)
    with pytest.raises(InvocationTimeoutError, match="no time left"):
        handler(event, LambdaContext(timeout_seconds=app_reserved_seconds() - 1))
    assert upload.classifier.store.get(picture_id_for_key(KEY, "uploads/")) is None
    # Lambda's retry (the same event, a fresh invocation with the full timeout) classifies it.
    assert handler(event, LambdaContext(60))["outcomes"] == {"classified": 1}


def app_reserved_seconds() -> float:
    return float(load_function("classify_upload").RESERVED_SECONDS)


def _probabilities(item: Any, classes: tuple[str, ...]) -> np.ndarray:
    return np.asarray([item.probabilities[c] for c in classes], dtype=np.float32)


def test_the_item_keeps_the_embedding_its_result_was_scored_from(
    upload_env: Any, upload: UploadFunction, invoke: Any, weights_uri: str, tmp_path: Path
) -> None:
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    invoke(created_event(upload_env, data))
    item = upload.classifier.store.get(picture_id_for_key(KEY, "uploads/"))
    assert item is not None and item.embedding is not None and len(item.embedding) == 521  # int8
    assert "embedding" not in repr(item)  # never rendered into a log line
    head = upload.classifier.weights.get()
    rescored = head.predict(embedding_codec.head_input(item.embedding, head.input_dim))[0]
    # Exactly what the item says (stored as float32-exact decimals): a rescore reproduces it.
    assert np.array_equal(_probabilities(item, head.classes), np.asarray(rescored.probabilities, np.float32))
    assert item.source.last_modified is not None and item.source.last_modified.endswith("Z")

    # StoreEmbeddings=false: nothing kept, the same answer (the head always scores the rounded embedding).
    lean = build_upload(
        tmp_path / "lean", WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET, STORE_EMBEDDINGS="false"
    )
    lean_handler = load_function("classify_upload").create_handler(lean)
    upload_env.delete_object(Bucket=BUCKET, Key=KEY)
    event = created_event(upload_env, data)
    event["Records"][0]["s3"]["object"]["sequencer"] = "FFFFFFFFFFFFFFFF"
    assert lean_handler(event, LambdaContext())["outcomes"] == {"classified": 1}
    again = lean.classifier.store.get(picture_id_for_key(KEY, "uploads/"))
    assert again is not None and again.embedding is None
    assert np.array_equal(_probabilities(again, head.classes), _probabilities(item, head.classes))


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_emf_counts_each_top_label_with_its_dimension_and_ambiguous_results(
    upload_env: Any, upload: UploadFunction, invoke: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from clip_classifier.head.forward import Head
    from clip_classifier.head.weights_format import WeightsDocument, document_sha256

    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    capsys.readouterr()
    invoke(created_event(upload_env, data))
    item = upload.classifier.store.get(picture_id_for_key(KEY, "uploads/"))
    assert item is not None
    lines = emf_lines(capsys.readouterr().out)
    (top,) = [line for line in lines if "TopLabel" in line]
    assert top["label"] == item.top_label and top["TopLabel"] in (1.0, [1.0])
    assert top["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["label", "service"]]
    assert not any("Ambiguous" in line for line in lines)  # the example head has no guard
    # A guard every result falls below: each classified upload counts as Ambiguous too.
    doc = json.loads((REPO_ROOT / "weights" / "example" / "example_head.json").read_text())
    doc["ambiguity"] = {"min_top_probability": 1.0, "min_margin": 1.0}
    guarded = WeightsDocument.model_validate(doc)
    guarded = guarded.model_copy(update={"content_sha256": document_sha256(guarded)})
    upload.classifier.weights = type("Guarded", (), {"get": lambda self: Head(guarded)})()
    later = created_event(upload_env, data)
    later["Records"][0]["s3"]["object"]["sequencer"] = "FFFFFFFFFFFFFFFFFF"  # a newer event of the key
    assert invoke(later)["outcomes"] == {"classified": 1}
    lines = emf_lines(capsys.readouterr().out)
    assert any(line.get("Ambiguous") in (1.0, [1.0]) for line in lines)


def test_a_label_becomes_a_valid_dimension_value() -> None:
    app = load_function("classify_upload")
    assert app.metric_dimension("pet") == "pet"
    assert app.metric_dimension("café") == "caf\\xe9"
    assert app.metric_dimension(" ") == "(blank)" and len(app.metric_dimension("x" * 2000)) == 1024


def test_with_events_on_an_upload_is_announced_and_a_failing_bus_only_costs_a_metric(
    upload_env: Any, weights_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.events.test_bridge import received
    from tests.unit.events.test_messages import validate

    sqs = boto3.client("sqs")
    queue = event_bus_queue(boto3.client("events"), sqs)
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()

    announcing = build_upload(
        tmp_path / "a", WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET, EVENT_BUS_NAME="clip-events"
    )
    handler = load_function("classify_upload").create_handler(announcing)
    assert handler(created_event(upload_env, data), LambdaContext())["outcomes"] == {"classified": 1}
    (event,) = received(sqs, queue)  # the example head has no guard: no Review Needed
    validate(event)
    stored = announcing.classifier.store.get(picture_id_for_key(KEY, "uploads/"))
    assert stored is not None and event["detail"]["pictureId"] == stored.picture_id
    assert event["detail"]["topLabel"] == stored.top_label and "embedding" not in json.dumps(event)

    # The bus is gone (or EventBridge refuses): the result is stored all the same, the miss is counted.
    failing = build_upload(
        tmp_path / "b", WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET, EVENT_BUS_NAME="gone"
    )
    handler = load_function("classify_upload").create_handler(failing)
    later = created_event(upload_env, data)
    later["Records"][0]["s3"]["object"]["sequencer"] = "FFFFFFFFFFFFFFFFFF"
    capsys.readouterr()
    assert handler(later, LambdaContext())["outcomes"] == {"classified": 1}
    lines = emf_lines(capsys.readouterr().out)
    assert any(line.get("EventsNotPublished") in (1.0, [1.0]) for line in lines)
    again = failing.classifier.store.get(picture_id_for_key(KEY, "uploads/"))
    assert (
        again is not None and again.sequencer is not None and again.sequencer.endswith("FFFFFFFFFFFFFFFFFF")
    )
