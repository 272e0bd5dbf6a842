"""The head registry: register, list, show, activate and roll back heads (``clip-classifier heads ...``).

Registration runs the runtime's own checks (:func:`~clip_classifier.head.weights_format.parse_weights`, then
:func:`~clip_classifier.head.fit.check_fits` against the deployed embedder), so a head the functions would
refuse never enters. Activation and rollback change the active pointer first (one conditional write: two
operators cannot both win) and then publish the head's file as the object both functions serve
(:meth:`HeadFiles.publish`); the functions pick it up at their next ETag check, within
``WEIGHTS_REFRESH_SECONDS``. If publishing fails after the pointer moved, the pointer and what is served
differ until the same command is run again, which finishes it (``heads list`` shows both).

The registry works through two ports, so its rules are tested in memory (``tests/fakes/registry.py``) and
its adapters against moto (:mod:`clip_classifier.storage.head_registry`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from clip_classifier.exceptions import (
    AmbiguousVersionError,
    EvaluationRunningError,
    NothingToRollBackError,
    RegistryConflictError,
    RegistryError,
    UnknownHeadError,
)
from clip_classifier.head.fit import ServedEmbedder, check_fits
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.registry.records import MAX_HISTORY, ActivePointer, EvaluationRef, HeadRecord, HeadStatus

#: The shortest version prefix accepted for a version (as git's short hashes).
MIN_PREFIX = 6
_HEX = re.compile(r"^[0-9a-f]+$")


class HeadRecords(Protocol):
    """The records (``HeadsTable``)."""

    def get(self, version: str) -> HeadRecord | None: ...

    def put_new(self, record: HeadRecord) -> bool:
        """Store a new record; ``False`` when one with that version exists (nothing is changed)."""
        ...

    def all(self) -> list[HeadRecord]: ...

    def active(self) -> ActivePointer | None: ...

    def set_active(self, pointer: ActivePointer, *, expected_revision: int | None) -> bool:
        """Replace the pointer if it is still at ``expected_revision`` (``None``: there is none yet)."""
        ...

    def set_status(
        self, version: str, status: HeadStatus, *, by: str | None = None, at: str | None = None
    ) -> None:
        """Set a record's status (with who and when, for an activation)."""
        ...

    def put_evaluation(self, version: str, ref: EvaluationRef) -> None:
        """Add or replace the record's evaluation ``ref.run_id``."""
        ...


class HeadFiles(Protocol):
    """The files (heads bucket): each head's file, the active head, the deployed embedder."""

    def put_head(self, version: str, raw: bytes) -> None:
        """Keep ``raw`` as ``version``'s file (written once; its name is its content's hash)."""
        ...

    def get_head(self, version: str) -> bytes: ...

    def publish(self, version: str, metadata: dict[str, str]) -> None:
        """Make ``version``'s file the one both functions serve, with ``metadata`` (who, when, what)."""
        ...

    def served(self) -> dict[str, str] | None:
        """The metadata of the head served now (``None``: none is)."""
        ...

    def embedder(self) -> ServedEmbedder | None:
        """The deployed image embedder, as ``heads init`` recorded it."""
        ...

    def put_embedder(self, manifest: bytes) -> None:
        """Record the deployed model's manifest (``heads init``)."""
        ...


@dataclass(frozen=True)
class Activation:
    record: HeadRecord
    #: The head active before (``None``: the first activation).
    previous: str | None
    #: The head was already active and served: nothing changed.
    unchanged: bool = False


def published_metadata(record: HeadRecord, *, by: str, at: str) -> dict[str, str]:
    """What the active object carries about its head (S3 user metadata: ASCII, short)."""

    def ascii(text: str) -> str:
        return text.encode("ascii", "replace").decode()[:200]

    return {
        "head-version": record.version,
        "head-type": record.head_type,
        "head-source": ascii(record.source),
        "registered-by": ascii(record.registered_by),
        "registered-at": record.registered_at,
        "activated-by": ascii(by),
        "activated-at": at,
    }


class HeadRegistry:
    def __init__(
        self,
        records: HeadRecords,
        files: HeadFiles,
        *,
        clock: Callable[[], str],
        evaluation_running: Callable[[EvaluationRef], bool] | None = None,
    ) -> None:
        self.records = records
        self.files = files
        self.clock = clock
        #: Whether an evaluation marked running still runs (its execution); default: trust the mark.
        self.evaluation_running = evaluation_running or (lambda ref: ref.status == "running")

    # --- reading ---------------------------------------------------------------------------------------

    def embedder(self) -> ServedEmbedder:
        served = self.files.embedder()
        if served is None:
            raise RegistryError(
                "the registry does not know the deployed model yet: run 'clip-classifier heads init "
                "--model-dir DIR' with the model the stack was built with"
            )
        return served

    def list(self) -> list[HeadRecord]:
        """Every registered head, the most recently registered first."""
        return sorted(self.records.all(), key=lambda r: r.registered_at, reverse=True)

    def resolve(self, version: str) -> HeadRecord:
        """The record of ``version`` or of the one version that starts with it (at least 6 hex digits)."""
        wanted = version.strip().lower()
        if len(wanted) < MIN_PREFIX or not _HEX.match(wanted):
            raise UnknownHeadError(
                f"{version!r} is not a head version: give its sha256 or at least {MIN_PREFIX} hex digits of it"
            )
        if len(wanted) == 64:
            record = self.records.get(wanted)
            if record is None:
                raise UnknownHeadError(f"no registered head has version {wanted}")
            return record
        matches = [r for r in self.records.all() if r.version.startswith(wanted)]
        if not matches:
            raise UnknownHeadError(f"no registered head has a version starting {wanted}")
        if len(matches) > 1:
            raise AmbiguousVersionError(
                f"{wanted} is the start of {len(matches)} versions ({', '.join(r.version[:12] for r in matches)}):"
                " give more digits"
            )
        return matches[0]

    def active(self) -> ActivePointer | None:
        return self.records.active()

    # --- changing --------------------------------------------------------------------------------------

    def register(self, raw: bytes, *, by: str, location: str) -> tuple[HeadRecord, bool]:
        """Check ``raw`` as the functions would and keep it: (its record, whether it is new)."""
        doc = parse_weights(raw, location=location)
        head = Head(doc)  # the functions' own load: a layer stack they cannot run is refused here too
        check_fits(head.input_dim, head.embedders, self.embedder(), location=location, who="this stack")
        existing = self.records.get(doc.content_sha256)
        if existing is not None:
            return existing, False
        self.files.put_head(doc.content_sha256, raw)
        record = HeadRecord.of(doc, size=len(raw), by=by, at=self.clock())
        if not self.records.put_new(record):  # registered by someone else meanwhile: the same file
            existing = self.records.get(doc.content_sha256)
            if existing is not None:
                return existing, False
        return record, True

    def activate(self, version: str, *, by: str, wait_for_evaluation: bool = True) -> Activation:
        """Make ``version`` the head both functions serve; the active one becomes the rollback target."""
        record = self.resolve(version)
        check_fits(
            record.input_dim,
            record.embedder_sha256,
            self.embedder(),
            location=record.version[:12],
            who="this stack",
        )
        latest = record.latest_evaluation
        if (
            wait_for_evaluation
            and latest is not None
            and latest.status == "running"
            and self.evaluation_running(latest)
        ):
            raise EvaluationRunningError(
                f"head {record.version[:12]} has evaluation {latest.run_id} still running: wait for its report "
                "(heads show), or activate with --no-wait-for-evaluation"
            )
        pointer = self.records.active()
        if pointer is not None and pointer.version == record.version:
            self._finish_publishing(record, pointer)
            return Activation(record, pointer.previous[0] if pointer.previous else None, unchanged=True)
        at = self.clock()
        history = ([pointer.version, *pointer.previous] if pointer else [])[:MAX_HISTORY]
        new = ActivePointer(
            version=record.version,
            previous=history,
            activated_by=by,
            activated_at=at,
            revision=pointer.revision + 1 if pointer else 1,
        )
        self._move(record, new, pointer)
        return Activation(record, pointer.version if pointer else None)

    def rollback(self, *, by: str) -> Activation:
        """Serve the head that was active before the active one (one step back in the history)."""
        pointer = self.records.active()
        if pointer is None or not pointer.previous:
            raise NothingToRollBackError("no head was active before the active one: nothing to roll back to")
        record = self.resolve(pointer.previous[0])
        new = ActivePointer(
            version=record.version,
            previous=pointer.previous[1:],
            activated_by=by,
            activated_at=self.clock(),
            revision=pointer.revision + 1,
        )
        self._move(record, new, pointer)
        return Activation(record, pointer.version)

    def _move(self, record: HeadRecord, new: ActivePointer, old: ActivePointer | None) -> None:
        if not self.records.set_active(new, expected_revision=old.revision if old else None):
            raise RegistryConflictError(
                "another activation or rollback happened at the same moment: nothing was changed; run "
                "'heads list' and try again"
            )
        self.files.publish(
            record.version, published_metadata(record, by=new.activated_by, at=new.activated_at)
        )
        self.records.set_status(record.version, "active", by=new.activated_by, at=new.activated_at)
        if old is not None and old.version != record.version:
            self.records.set_status(old.version, "retired")

    def _finish_publishing(self, record: HeadRecord, pointer: ActivePointer) -> None:
        """The pointer names ``record``: make sure it is also what is served (an earlier run may have
        stopped between the two writes)."""
        served = self.files.served() or {}
        if served.get("head-version") != record.version:
            self.files.publish(
                record.version, published_metadata(record, by=pointer.activated_by, at=pointer.activated_at)
            )
            self.records.set_status(
                record.version, "active", by=pointer.activated_by, at=pointer.activated_at
            )
