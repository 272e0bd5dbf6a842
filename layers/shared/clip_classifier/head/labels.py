"""What a head's classes may be: rules every tool and function applies through these functions, so a head
the trainer writes is a head both functions serve, and a head they serve can always be stored and returned.

* **Labels** are text a person reads on a page: Unicode NFC, no control, separator or bidirectional
  formatting characters, not blank, no surrounding spaces, at most :data:`MAX_LABEL_CHARS` characters, and
  unique once case and normalisation are set aside (``Pet`` and ``pet`` would be one class to a reader).
* **How many**: at most :data:`MAX_CLASSES`, and few and short enough that the largest result the system
  writes fits where it goes, computed from the labels themselves: a stored item within DynamoDB's 400 KB,
  and a full API batch (100 results) within Lambda's 6 MB response.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence

from clip_classifier.limits import DYNAMODB_ITEM_BYTES, LAMBDA_RESPONSE_BYTES, MAX_TRANSACTION_ITEMS

MAX_LABEL_CHARS = 128
#: A result lists every class: more than this is not a classifier a page (or a person reviewing) can show.
MAX_CLASSES = 1000
#: Characters that change how the text around them is displayed (Trojan-source style reordering).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Unicode categories never allowed in a label: controls, surrogates, unassigned, line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Cn", "Zl", "Zp"})
#: The longest JSON text of one float the API writes (e.g. ``-1.1754943508222875e-38``), and the longest
#: DynamoDB number it stores (a float32's shortest repr, ``-1.1754944e-38``, with its type overhead).
_JSON_NUMBER = 24
_DYNAMO_NUMBER = 21
#: What a stored item holds besides its per-class figures (ids, source, timings, the 512-d embedding…).
_ITEM_BASE_BYTES = 4096
_RESULT_BASE_BYTES = 1024


def label_problem(label: object) -> str | None:
    """Why ``label`` cannot be a class label, or ``None``."""
    if not isinstance(label, str):
        return "is not text"
    if not label.strip():
        return "is blank"
    if label != label.strip():
        return "has spaces at its start or end"
    if len(label) > MAX_LABEL_CHARS:
        return f"has {len(label)} characters; at most {MAX_LABEL_CHARS} are allowed"
    if unicodedata.normalize("NFC", label) != label:
        return "is not in Unicode NFC form (normalise it: unicodedata.normalize('NFC', label))"
    for char in label:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES or char in _BIDI_CONTROLS:
            return f"has the character U+{ord(char):04X}, which is not allowed in a label"
    return None


def shown(label: object) -> str:
    """A label as messages quote it: escaped, cut to 40 characters."""
    text = json.dumps(label, ensure_ascii=True)
    return text if len(text) <= 42 else text[:40] + '…"'


def result_sizes(classes: Sequence[str]) -> tuple[int, int]:
    """The largest bytes a result with these classes can take: (stored item, API batch of 100 results).

    Each class appears three times (``classes``, and the keys of ``probabilities`` and ``scores``) with two
    numbers, and the three most probable again in ``top`` and ``topLabel``; the API escapes every non-ASCII
    character (``\\uXXXX``), DynamoDB counts UTF-8 bytes.
    """
    as_json = sorted((len(json.dumps(label, ensure_ascii=True)) for label in classes), reverse=True)
    as_utf8 = sorted((len(label.encode("utf-8")) for label in classes), reverse=True)
    item = (
        _ITEM_BASE_BYTES + 3 * sum(as_utf8) + len(classes) * (2 * _DYNAMO_NUMBER + 8) + 4 * sum(as_utf8[:3])
    )
    result = (
        _RESULT_BASE_BYTES + 3 * sum(as_json) + len(classes) * (2 * _JSON_NUMBER + 6) + 4 * sum(as_json[:3])
    )
    return item, MAX_TRANSACTION_ITEMS * result


def classes_problem(classes: Sequence[object]) -> str | None:
    """Why these cannot be a head's classes (the first problem found), or ``None``."""
    if len(classes) < 2:
        return f"a head needs at least 2 classes, got {len(classes)}"
    if len(classes) > MAX_CLASSES:
        return f"{len(classes)} classes; at most {MAX_CLASSES} are allowed (a result lists every class)"
    seen: dict[str, int] = {}
    for index, label in enumerate(classes):
        problem = label_problem(label)
        if problem:
            return f"classes[{index}] {shown(label)} {problem}"
        assert isinstance(label, str)
        key = unicodedata.normalize("NFC", label).casefold()
        if key in seen:
            return f"classes[{index}] {shown(label)} repeats classes[{seen[key]}] {shown(classes[seen[key]])}"
        seen[key] = index
    item, batch = result_sizes([str(c) for c in classes])
    if item > DYNAMODB_ITEM_BYTES:
        return (
            f"a stored result with these {len(classes)} classes can take {item:,} bytes, over DynamoDB's "
            f"{DYNAMODB_ITEM_BYTES:,}-byte item limit: use fewer classes or shorter labels"
        )
    if batch > LAMBDA_RESPONSE_BYTES:
        return (
            f"an API batch of {MAX_TRANSACTION_ITEMS} results with these {len(classes)} classes can take "
            f"{batch:,} bytes, over Lambda's {LAMBDA_RESPONSE_BYTES:,}-byte response limit: use fewer "
            "classes or shorter labels"
        )
    return None
