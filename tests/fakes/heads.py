"""Head providers and backfill lists in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage.backfill_lists import ManifestResult
from clip_local.paths import EXAMPLE_WEIGHTS


def example_head() -> Head:
    return Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes(), location=str(EXAMPLE_WEIGHTS)))


@dataclass
class FixedHead:
    """Serves one head until a test swaps it (an activation, a refresh)."""

    head: Head = field(default_factory=example_head)
    calls: int = 0

    def get(self) -> Head:
        self.calls += 1
        return self.head

    def origin(self) -> dict[str, str]:
        return {}


@dataclass
class InMemoryBackfillLists:
    files: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def write(self, run_id: str, segment: int, part: int, rows: list[tuple[str, str]]) -> str:
        key = f"{run_id}/segment-{segment:06d}-part-{part:04d}"
        self.files[key] = list(rows)
        return key

    def write_manifest(self, run_id: str) -> ManifestResult:
        mine = [rows for key, rows in self.files.items() if key.startswith(f"{run_id}/")]
        if not mine:
            return ManifestResult(manifest=None, files=0, keys=0)
        return ManifestResult(
            manifest=f"memory://{run_id}/manifest.json", files=len(mine), keys=sum(map(len, mine))
        )
