"""An activation while a backfill or a rescore runs: every item ends scored by exactly one head, the one its
``headVersion`` names (its probabilities are that head applied to its stored embedding), and a second
rescore brings every item to the active head."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.load_uploads import small_image
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_local.heads import reseeded_head
from clip_local.jobs import BACKFILL, RESCORE
from clip_local.paths import EXAMPLE_WEIGHTS, TINY_MODEL_DIR
from clip_local.stack import LocalStack, local_stack
from clip_local.step_functions import ChildRun, MapRun

KEYS = 150


class ActivateAfterFirstChild:
    """Activates ``weights`` when the run's first child finishes (the others are still running)."""

    def __init__(self, stack: LocalStack, weights: Path) -> None:
        self.stack, self.weights = stack, weights
        self.version: str | None = None

    def __call__(self, run: MapRun, child: ChildRun) -> None:
        if self.version is None:
            self.version = self.stack.activate_head(self.weights)


def scored_by(stack: LocalStack, heads: dict[str, Head]) -> Counter[str]:
    """Which head scored each classified item; asserts it really is that head's result."""
    by: Counter[str] = Counter()
    page = stack.results.scan_segment(0, 1, start_key=None, limit=10_000)
    assert page.next_key is None
    for item in page.items:
        if item.status != "classified":
            continue
        assert item.head_version in heads, f"{item.picture_id} names an unknown head {item.head_version}"
        assert item.embedding is not None and item.probabilities is not None
        head = heads[item.head_version]
        expected = head.predict(embedding_codec.head_input(item.embedding, head.input_dim))[0]
        got = np.array([item.probabilities[c] for c in head.classes])
        assert np.abs(got - np.array(expected.probabilities)).max() <= 1e-6, item.picture_id
        by[item.head_version] += 1
    return by


def test_activations_during_a_backfill_and_a_rescore_leave_each_item_scored_by_the_head_it_names(
    tmp_path: Path,
) -> None:
    files = {}
    for seed in (1, 2, 3):
        files[seed] = tmp_path / f"head-{seed}.json"
        files[seed].write_bytes(reseeded_head(EXAMPLE_WEIGHTS, seed=seed))
    heads = {
        h.version: h
        for h in (Head(parse_weights(p.read_bytes())) for p in [EXAMPLE_WEIGHTS, *files.values()])
    }
    first = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes())).version
    with local_stack(
        quiet=True, workers=2, model_dir=TINY_MODEL_DIR / "int8", extra_env={"WEIGHTS_REFRESH_SECONDS": "0"}
    ) as stack:
        for i in range(KEYS):
            stack.put_existing(f"old/{i:03d}.png", small_image(i))
        time.sleep(1.1)  # S3's LastModified has seconds: the run must start in a later second

        during_backfill = ActivateAfterFirstChild(stack, files[1])
        summary = stack.jobs.run(BACKFILL, on_child_done=during_backfill)
        assert summary.status == "SUCCEEDED" and summary.counts["classified"] == KEYS
        after_backfill = scored_by(stack, heads)
        assert set(after_backfill) == {first, during_backfill.version}, after_backfill
        assert sum(after_backfill.values()) == KEYS

        stack.activate_head(files[2])
        during_rescore = ActivateAfterFirstChild(stack, files[3])
        rescore = stack.jobs.run(RESCORE, on_child_done=during_rescore)
        assert rescore.status == "SUCCEEDED"
        after_rescore = scored_by(stack, heads)
        assert sum(after_rescore.values()) == KEYS
        assert set(after_rescore) <= set(heads) and during_rescore.version in heads
        assert len(after_rescore) >= 2, f"the activation raced nothing: {after_rescore}"

        again = stack.jobs.run(RESCORE)
        assert again.status == "SUCCEEDED"
        assert scored_by(stack, heads) == Counter({during_rescore.version: KEYS})
