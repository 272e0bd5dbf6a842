"""The review queue's rules on their own: the order key, the stable sample, what a label may be, and the
cursor — only one the API handed out is accepted, never a key a caller composed."""

from __future__ import annotations

import base64
import json
import unicodedata

import pytest

from clip_classifier.exceptions import InvalidCursorError, LabelError
from clip_classifier.head.result_fields import RankedLabel
from clip_classifier.storage.review_queue import (
    NONE_OF_THESE,
    check_label,
    decode_cursor,
    encode_cursor,
    margin,
    needs_review,
    sampled,
)

CLASSES = ["café", "dog", "bird"]


def test_margin_is_top1_minus_top2() -> None:
    top = [RankedLabel(label="a", probability=0.5), RankedLabel(label="b", probability=0.3)]
    assert margin(top) == pytest.approx(0.2)
    assert margin(top[:1]) == 0.5 and margin([]) == 1.0


def test_a_labelled_result_never_needs_review_and_the_sample_is_stable() -> None:
    assert needs_review("p", True, labelled=False) and not needs_review("p", True, labelled=True)
    assert not needs_review("p", False, labelled=False) and not needs_review("p", None, labelled=False)
    picked = {f"p{i}" for i in range(2000) if sampled(f"p{i}", 0.05)}
    assert 60 <= len(picked) <= 140 and picked == {f"p{i}" for i in range(2000) if sampled(f"p{i}", 0.05)}
    assert not sampled("p", 0.0) and sampled("p", 1.0)


def test_labels_are_the_heads_classes_after_nfc_or_none_of_these() -> None:
    assert check_label(unicodedata.normalize("NFD", "café"), CLASSES) == "café"
    assert check_label("  dog ", CLASSES) == "dog" and check_label(NONE_OF_THESE, CLASSES) == NONE_OF_THESE
    for hostile in ("Dog", "dog\u0000", "", "x" * 10_000, "<b>dog</b>"):
        with pytest.raises(LabelError, match="is not one of the active head's 3 classes"):
            check_label(hostile, CLASSES)


def test_a_cursor_round_trips_and_anything_else_is_refused() -> None:
    key = {"pictureId": {"S": "a b/é"}, "reviewQueue": {"S": "open"}, "reviewMargin": {"N": "0.0123"}}
    assert decode_cursor(encode_cursor(key)) == key
    assert encode_cursor(None) is None and decode_cursor(None) is None and decode_cursor("") is None

    def forged(plain: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode()

    for cursor in (
        "not base64 !",
        forged(["p", "0.1"]),
        forged({"p": "x", "m": "NaN"}),
        forged({"p": "x", "m": "1E+400"}),  # another queue position than any margin can have
        forged({"p": "x", "m": "-0.1"}),
        forged({"p": "", "m": "0.1"}),
        forged({"p": "x", "m": 0.1}),  # a number, not the string the API writes
        forged({"p": "x", "m": "0.1", "q": "closed"}),  # another partition of the index
    ):
        with pytest.raises(InvalidCursorError, match="not one this API handed out"):
            decode_cursor(cursor)
