"""The head registry's ports in memory: records and files, with the adapters' rules (conditional writes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from clip_classifier.exceptions import UnknownHeadError
from clip_classifier.head.fit import ServedEmbedder
from clip_classifier.registry.records import ActivePointer, EvaluationRef, HeadRecord, HeadStatus


@dataclass
class InMemoryHeadRecords:
    records: dict[str, HeadRecord] = field(default_factory=dict)
    pointer: ActivePointer | None = None

    def get(self, version: str) -> HeadRecord | None:
        record = self.records.get(version)
        return record.model_copy(deep=True) if record else None

    def put_new(self, record: HeadRecord) -> bool:
        if record.version in self.records:
            return False
        self.records[record.version] = record.model_copy(deep=True)
        return True

    def all(self) -> list[HeadRecord]:
        return [r.model_copy(deep=True) for r in self.records.values()]

    def active(self) -> ActivePointer | None:
        return self.pointer

    def set_active(self, pointer: ActivePointer, *, expected_revision: int | None) -> bool:
        current = self.pointer.revision if self.pointer else None
        if current != expected_revision:
            return False
        self.pointer = pointer
        return True

    def set_status(
        self, version: str, status: HeadStatus, *, by: str | None = None, at: str | None = None
    ) -> None:
        record = self.records[version]
        update: dict[str, object] = {"status": status}
        if by is not None and at is not None:
            update |= {"activated_by": by, "activated_at": at}
        self.records[version] = record.model_copy(update=update)

    def put_evaluation(self, version: str, ref: EvaluationRef) -> None:
        record = self.records[version]
        self.records[version] = record.model_copy(
            update={"evaluations": {**record.evaluations, ref.run_id: ref}}
        )


@dataclass
class InMemoryHeadFiles:
    heads: dict[str, bytes] = field(default_factory=dict)
    #: What is served: (version, metadata), the last publish.
    active: tuple[str, dict[str, str]] | None = None
    manifest: bytes | None = None
    publishes: int = 0

    def put_head(self, version: str, raw: bytes) -> None:
        self.heads.setdefault(version, raw)

    def get_head(self, version: str) -> bytes:
        if version not in self.heads:
            raise UnknownHeadError(f"no file for {version}")
        return self.heads[version]

    def publish(self, version: str, metadata: dict[str, str]) -> None:
        self.get_head(version)
        self.active = (version, dict(metadata))
        self.publishes += 1

    def served(self) -> dict[str, str] | None:
        return dict(self.active[1]) if self.active else None

    def embedder(self) -> ServedEmbedder | None:
        if self.manifest is None:
            return None
        document = json.loads(self.manifest)
        return ServedEmbedder(
            output_dim=int(document["output_dim"]), model_sha256=str(document["model_sha256"])
        )

    def put_embedder(self, manifest: bytes) -> None:
        self.manifest = manifest
