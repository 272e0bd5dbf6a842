"""The events' contract: the committed schemas are the models' (``python -m clip_local.event_schemas``), an
upload's result announces what it should, and nothing in an event is an embedding or image bytes."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np
import pytest

from clip_classifier.events.messages import (
    DETAILS,
    SOURCE,
    ClassificationCompleted,
    Detail,
    HeadActivated,
    LabelAdded,
    ReviewNeeded,
    upload_events,
)
from clip_classifier.head.forward import Prediction
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_local.event_schemas import SCHEMAS_DIR, file_name, schemas

CLASSES = ("cat", "dog", "bird")


def item(ambiguous: bool | None) -> ClassificationItem:
    prediction = Prediction(CLASSES, (0.9, 0.8, 0.1), (0.45, 0.40, 0.15), ambiguous=ambiguous)
    return ClassificationItem.classified(
        "IMG_1.jpg",
        ResultFields.from_prediction(prediction, head_version="a" * 64),
        source=SourceInfo(type="s3", bucket="b", key="uploads/IMG_1.jpg"),
        embedding=b"\x02" + bytes(520),
        sequencer="0" * 24,
    )


def envelope(detail: Detail) -> dict[str, Any]:
    """The event as a rule's target receives it (what EventBridge adds around the detail is left out)."""
    return {
        "source": SOURCE,
        "detail-type": detail.DETAIL_TYPE,
        "detail": json.loads(detail.model_dump_json(by_alias=True)),
    }


def validate(event: dict[str, Any]) -> None:
    detail_type = event["detail-type"]
    (model,) = [d for d in DETAILS if detail_type == d.DETAIL_TYPE]
    schema = json.loads((SCHEMAS_DIR / file_name(model)).read_text())
    jsonschema.validate(event, schema)


def test_the_committed_schemas_are_current() -> None:
    written = {p.name: json.loads(p.read_text()) for p in SCHEMAS_DIR.glob("*.json")}
    assert written == schemas(), "run: python -m clip_local.event_schemas"
    for schema in written.values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_an_ambiguous_upload_announces_its_result_and_that_it_waits_for_a_person() -> None:
    completed, review = upload_events(item(ambiguous=True))
    assert isinstance(completed, ClassificationCompleted) and isinstance(review, ReviewNeeded)
    assert completed.top_label == "cat" and completed.key == "uploads/IMG_1.jpg" and completed.ambiguous
    assert review.margin == pytest.approx(0.05, abs=1e-6) and [t.label for t in review.top] == [
        "cat",
        "dog",
        "bird",
    ]
    (only,) = upload_events(item(ambiguous=False))
    assert isinstance(only, ClassificationCompleted)
    failed = ClassificationItem.failed(
        "bad.jpg", code="image_corrupt", message="m", source=SourceInfo(type="s3")
    )
    assert upload_events(failed) == []


def test_every_event_validates_against_its_schema_and_carries_no_embedding() -> None:
    events: list[Detail] = [
        *upload_events(item(ambiguous=True)),
        LabelAdded(
            picture_id="p",
            label="dog",
            machine_label="cat",
            labeled_by="arn:x",
            labeled_at="2026-12-04T06:00:00.000Z",
        ),
        HeadActivated(
            version="b" * 64,
            previous="a" * 64,
            head_type="mlp",
            classes=12,
            activated_by="arn:x",
            activated_at="2026-12-04T06:00:00.000Z",
        ),
    ]
    assert {e.DETAIL_TYPE for e in events} == {d.DETAIL_TYPE for d in DETAILS}
    for event in events:
        body = envelope(event)
        validate(body)
        text = json.dumps(body)
        assert "embedding" not in text and "AAAA" not in text
    broken = envelope(events[0])
    broken["detail"]["embedding"] = np.zeros(4).tolist()
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)  # the schema admits nothing else
