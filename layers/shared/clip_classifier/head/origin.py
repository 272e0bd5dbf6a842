"""Where a head came from, in a few words: what ``clip-classifier heads list``, ``GET /v1/model``, the local
stack and the demo page say about the head they show (one rule, from the head file's provenance)."""

from __future__ import annotations

from typing import Any


def is_example(provenance: dict[str, Any]) -> bool:
    """A random head made only to run the pipeline (its labels mean nothing)."""
    training = provenance.get("training") or {}
    return bool(training.get("example_only") or training.get("random_init"))


def describe_source(head_type: str, provenance: dict[str, Any]) -> str:
    training = provenance.get("training") or {}
    if is_example(provenance):
        return "random example head (its labels mean nothing)"
    if head_type == "zero_shot":
        counts = training.get("prompts_per_class")
        total = sum(v for v in counts.values() if isinstance(v, int)) if isinstance(counts, dict) else 0
        return f"zero-shot from {total} class prompts" if total else "zero-shot from class prompts"
    exporter = provenance.get("exported_by") or "an unknown tool"
    return f"{head_type} head by {exporter}"
