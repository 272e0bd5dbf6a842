"""``clip-classifier review …`` and ``labels export``: the review loop from an operator's terminal.

The queue of results waiting for a person (most uncertain first), a person's label beside the machine's
result (``by`` is the operator's IAM identity), and the labelled items' stored embeddings written for the
trainer (``weights/train_head.py --features``). The HTTP routes for reviewers who sign in with Cognito use the
same store methods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clip_classifier.api.review import give_label, withdraw_label
from clip_classifier.cli.heads import Output
from clip_classifier.cli.tables import table
from clip_classifier.exceptions import ConfigurationError, CorruptEmbeddingError, ResultNotFoundError
from clip_classifier.ports import EventPublisher
from clip_classifier.registry.service import HeadRegistry
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.result_item import ClassificationItem
from clip_classifier.storage.results_table import ResultsStore
from clip_classifier.storage.review_queue import (
    NONE_OF_THESE,
    decode_cursor,
    encode_cursor,
)

#: What a labels export reads of each item (the scan bills the whole item either way).
EXPORT_ATTRIBUTES = ("pictureId", "status", "personLabel", "embedding", "embedderVersion", "source")
#: Parallel scan segments of a labels export (one process, one segment at a time: an operator's command).
EXPORT_SEGMENTS = 4


@dataclass
class Reviewer:
    store: ResultsStore
    registry: HeadRegistry
    who: str
    clock: Callable[[], str]
    #: The stack's event bus (``PublishEvents``): labels are announced there.
    events: EventPublisher | None = None

    def active_classes(self) -> list[str]:
        pointer = self.registry.active()
        if pointer is None:
            raise ConfigurationError("no head is active: activate one first (clip-classifier heads activate)")
        return list(self.registry.resolve(pointer.version).classes)


def _row(item: ClassificationItem) -> dict[str, Any]:
    return {
        "pictureId": item.picture_id,
        "margin": item.review_margin,
        "top": [{"label": t.label, "probability": t.probability} for t in item.top or []],
        "key": item.source.key,
        "headVersion": item.head_version,
    }


def review_list(reviewer: Reviewer, *, limit: int, cursor: str | None) -> Output:
    page = reviewer.store.review_page(limit=limit, start_key=decode_cursor(cursor))
    rows = [_row(i) for i in page.items]
    data = {"items": rows, "cursor": encode_cursor(page.next_key)}
    text = table(
        ["pictureId", "margin", "top 3", "key"],
        [
            [
                r["pictureId"],
                f"{r['margin']:.4f}" if r["margin"] is not None else "",
                ", ".join(f"{t['label']} {t['probability']:.1%}" for t in r["top"]),
                r["key"] or "(API result)",
            ]
            for r in rows
        ],
    )
    more = f"\nnext page: --cursor {data['cursor']}" if data["cursor"] else "\n(end of the queue)"
    return Output((text if rows else "the review queue is empty") + more, data)


def label_picture(reviewer: Reviewer, picture_id: str, label: str) -> Output:
    item, unpublished = give_label(
        reviewer.store,
        picture_id,
        label,
        classes=reviewer.active_classes(),
        by=reviewer.who,
        at=reviewer.clock(),
        events=reviewer.events,
    )
    stored = item.person_label
    data = {
        "pictureId": picture_id,
        "personLabel": stored,
        "labeledBy": reviewer.who,
        "labeledAt": item.labeled_at,
    }
    text = f"{picture_id}: labelled {stored!r} (final label {item.final_label!r}) by {reviewer.who}"
    if unpublished:
        text += "\n(the Label Added event was not published: EventBridge refused it)"
    return Output(text, data)


def unlabel_picture(reviewer: Reviewer, picture_id: str) -> Output:
    # The operator's command does not sample confident results back in: only a doubtful one waits again.
    item, queued = withdraw_label(reviewer.store, picture_id, review_sample_rate=0.0)
    back = "back in the review queue" if queued else "not doubtful: not queued"
    return Output(f"{picture_id}: label {item.person_label!r} withdrawn ({back})", {"pictureId": picture_id})


def export_labels(reviewer: Reviewer, out: Path) -> Output:
    """Every labelled item's stored embedding, its label and the embedder that made it, as the trainer's
    ``--features`` file. Items labelled "none of these", without an embedding, or from another embedder than
    the one most labels came from are counted and left out, never guessed."""
    features: list[np.ndarray] = []
    labels: list[str] = []
    models: list[str] = []
    skipped: Counter[str] = Counter()
    for segment in range(EXPORT_SEGMENTS):
        start: dict[str, Any] | None = None
        while True:
            page = reviewer.store.scan_segment(
                segment, EXPORT_SEGMENTS, start_key=start, attributes=EXPORT_ATTRIBUTES
            )
            skipped["unreadable"] += len(page.unreadable)
            for item in page.items:
                if item.person_label is None:
                    continue
                if item.person_label == NONE_OF_THESE:
                    skipped["none of these"] += 1
                elif item.embedding is None or item.embedder_version is None:
                    skipped["no embedding"] += 1
                else:
                    try:
                        dim = embedding_codec.dimension(item.embedding)
                        features.append(embedding_codec.head_input(item.embedding, dim)[0])
                    except CorruptEmbeddingError:
                        skipped["corrupt embedding"] += 1
                        continue
                    labels.append(item.person_label)
                    models.append(item.embedder_version)
            start = page.next_key
            if start is None:
                break
    if not labels:
        raise ResultNotFoundError("no labelled item has a stored embedding: label some results first")
    model, _ = Counter(models).most_common(1)[0]
    keep = [i for i, m in enumerate(models) if m == model and len(features[i]) == len(features[0])]
    skipped["another embedder"] += len(labels) - len(keep)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        np.savez(
            fh,
            features=np.stack([features[i] for i in keep]).astype(np.float32),
            labels=np.asarray([labels[i] for i in keep]),
            model_sha256=np.asarray(model),
        )
    counts = Counter(labels[i] for i in keep)
    left_out = {k: v for k, v in sorted(skipped.items()) if v}
    data = {
        "out": str(out),
        "items": len(keep),
        "model_sha256": model,
        "labels": dict(sorted(counts.items())),
        "skipped": left_out,
    }
    text = table(["label", "items"], [[k, str(v)] for k, v in sorted(counts.items())])
    left = ", ".join(f"{v} {k}" for k, v in left_out.items()) or "none"
    return Output(
        f"{text}\nwrote {out}: {len(keep)} labelled embeddings of model {model[:12]}… (left out: {left})\n"
        f"train: python weights/train_head.py --features {out} --model-dir <export>/int8 --out head.json",
        data,
    )
