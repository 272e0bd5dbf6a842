"""Which results wait for a person, and in what order: the review queue's rule, kept on the item.

A result enters the queue when the head's guard calls it ambiguous (or, as an option, when a fixed share of
confident results is sampled for an honest accuracy estimate), and only while no person has labelled it.
The queue is a sparse index of the results table (``ReviewQueue`` in ``template.yaml``): an item is in it
exactly when it carries ``reviewQueue``, ordered by ``reviewMargin`` — the top-1 minus top-2 probability,
smallest (most informative) first. Reading a page of it reads only that page, at any table size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import unicodedata
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from clip_classifier.exceptions import InvalidCursorError, LabelError
from clip_classifier.head.result_fields import RankedLabel, ResultFields

#: The index's partition key value for every waiting item (one queue per table).
OPEN = "open"
#: The label a person gives when no class of the head fits.
NONE_OF_THESE = "none of these"
INDEX_NAME = "ReviewQueue"


def margin(top: Sequence[RankedLabel]) -> float:
    """Top-1 minus top-2 probability (1.0 with a single class): the queue's order."""
    if not top:
        return 1.0
    second = top[1].probability if len(top) > 1 else 0.0
    return max(0.0, float(top[0].probability) - float(second))


def sampled(picture_id: str, rate: float) -> bool:
    """A stable share ``rate`` of pictures, by their id: the same picture is sampled or not on every
    re-score, so the estimate is not biased by when a head changed."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(picture_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def needs_review(
    picture_id: str, ambiguous: bool | None, *, labelled: bool, sample_rate: float = 0.0
) -> bool:
    return not labelled and (ambiguous is True or sampled(picture_id, sample_rate))


def review_state(
    picture_id: str, result: ResultFields, *, labelled: bool, sample_rate: float = 0.0
) -> tuple[str | None, float]:
    """``(reviewQueue, reviewMargin)`` of a result: the one rule every writer of a result applies (an upload's
    item, a rescore's update, the in-memory fake)."""
    queued = needs_review(picture_id, result.ambiguous, labelled=labelled, sample_rate=sample_rate)
    return (OPEN if queued else None), margin(result.top)


def check_label(label: str, classes: Sequence[str]) -> str:
    """A person's label as stored: one of ``classes`` (the active head's) or :data:`NONE_OF_THESE`, compared
    after Unicode normalisation (NFC) as the head's own labels are; else :class:`LabelError` naming it."""
    given = unicodedata.normalize("NFC", label.strip())
    if given == NONE_OF_THESE or given in classes:
        return given
    shown = json.dumps(label, ensure_ascii=False)[:80]
    raise LabelError(
        f"label {shown} is not one of the active head's {len(classes)} classes "
        f'({", ".join(classes[:12])}{", ..." if len(classes) > 12 else ""}) nor "{NONE_OF_THESE}"'
    )


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    """The queue's ``LastEvaluatedKey`` as an opaque string (``None`` at the end)."""
    if key is None:
        return None
    plain = {
        "p": key["pictureId"]["S"],
        "m": key["reviewMargin"]["N"],
    }
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """A cursor back to the key to continue from, or :class:`InvalidCursorError`: only what
    :func:`encode_cursor` wrote is accepted, never a key a caller composed."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        plain = json.loads(raw)
        picture_id, number = plain["p"], plain["m"]
        if not isinstance(picture_id, str) or not isinstance(number, str) or set(plain) != {"p", "m"}:
            raise ValueError("fields")
        value = Decimal(number)
        if not value.is_finite() or not 0 <= value <= 1 or not 0 < len(picture_id) <= 1024:
            raise ValueError("range")
    except (binascii.Error, ValueError, TypeError, KeyError, InvalidOperation, UnicodeDecodeError) as exc:
        raise InvalidCursorError("cursor is not one this API handed out; start again without it") from exc
    return {
        "pictureId": {"S": picture_id},
        "reviewQueue": {"S": OPEN},
        "reviewMargin": {"N": number},
    }
