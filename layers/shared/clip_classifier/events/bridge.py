"""Events to an EventBridge bus: the adapter behind :class:`clip_classifier.ports.EventPublisher`.

A failed publish never fails what it announces: the result is stored already. :meth:`EventBridgePublisher.
publish` returns how many events were not published (the function counts them in the ``EventsNotPublished``
metric) and raises nothing, whatever the SDK does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from clip_classifier.aws import AWS_ERRORS, error_code
from clip_classifier.events.messages import SOURCE, Detail

logger = logging.getLogger(__name__)
#: PutEvents takes at most 10 entries a call.
BATCH = 10


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str, *, source: str = SOURCE) -> None:
        self.client = client
        self.bus_name = bus_name
        self.source = source

    def publish(self, details: Sequence[Detail]) -> int:
        """Put ``details`` on the bus; the number that did not get there (0: all did)."""
        failed = 0
        for start in range(0, len(details), BATCH):
            batch = details[start : start + BATCH]
            entries = [
                {
                    "Source": self.source,
                    "DetailType": d.DETAIL_TYPE,
                    "Detail": d.model_dump_json(by_alias=True),
                    "EventBusName": self.bus_name,
                }
                for d in batch
            ]
            try:
                response = self.client.put_events(Entries=entries)
            except AWS_ERRORS as exc:
                logger.warning("events not published", extra={"count": len(batch), "code": error_code(exc)})
                failed += len(batch)
                continue
            count = int(response.get("FailedEntryCount", 0) or 0)
            if count:
                codes = sorted(
                    {e.get("ErrorCode", "?") for e in response.get("Entries", []) if e.get("ErrorCode")}
                )
                logger.warning("events not published", extra={"count": count, "codes": codes})
            failed += count
        return failed
