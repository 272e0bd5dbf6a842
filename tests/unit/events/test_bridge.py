"""The EventBridge adapter against in-process moto: events reach the bus (a rule delivers them to an SQS
queue, where they validate against the committed schemas), and a bus that refuses them is counted, never
raised: what they announce is done already."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from clip_classifier.events.bridge import EventBridgePublisher
from clip_classifier.events.messages import LabelAdded, upload_events
from tests.helpers import FaultyClient, client_error, event_bus_queue
from tests.unit.events.test_messages import item, validate


@pytest.fixture
def bus(aws: None) -> tuple[Any, Any, str]:
    events, sqs = boto3.client("events"), boto3.client("sqs")
    return events, sqs, event_bus_queue(events, sqs)


def received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return out
        out += [json.loads(m["Body"]) for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])


def test_published_events_arrive_and_validate(bus: tuple[Any, Any, str]) -> None:
    events, sqs, queue = bus
    details = [
        *upload_events(item(ambiguous=True)),
        LabelAdded(picture_id="p", label="dog", labeled_by="arn:x", labeled_at="2026-12-04T06:00:00.000Z"),
    ]
    assert EventBridgePublisher(events, "clip-events").publish(details) == 0
    seen = received(sqs, queue)
    assert sorted(e["detail-type"] for e in seen) == [
        "Classification Completed",
        "Label Added",
        "Review Needed",
    ]
    for event in seen:
        validate(event)


def test_more_than_ten_events_go_in_batches(bus: tuple[Any, Any, str]) -> None:
    events, sqs, queue = bus
    details = [LabelAdded(picture_id=f"p{i}", label="dog", labeled_by="r", labeled_at="t") for i in range(23)]
    assert EventBridgePublisher(events, "clip-events").publish(details) == 0
    assert len(received(sqs, queue)) == 23


def test_a_refusing_bus_is_counted_not_raised(bus: tuple[Any, Any, str]) -> None:
    events, _, _ = bus
    throttled = FaultyClient(events, put_events=[client_error("ThrottlingException", 400, "PutEvents")])
    assert EventBridgePublisher(throttled, "clip-events").publish(upload_events(item(ambiguous=True))) == 2
    # A bus that does not exist (PublishEvents off, or deleted): every entry fails, nothing raises.
    assert EventBridgePublisher(events, "no-such-bus").publish(upload_events(item(ambiguous=False))) == 1
