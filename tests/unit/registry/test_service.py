"""The registry's rules on in-memory ports: what registration refuses, how activation, rollback and their
races behave (the adapters are proven against moto in tests/unit/storage/test_head_registry.py)."""

from __future__ import annotations

import json
from itertools import count

import pytest

from clip_classifier.exceptions import (
    AmbiguousVersionError,
    EvaluationRunningError,
    NothingToRollBackError,
    RegistryConflictError,
    RegistryError,
    UnknownHeadError,
    WeightsIntegrityError,
    WeightsMismatchError,
)
from clip_classifier.registry.records import MAX_HISTORY, ActivePointer, EvaluationRef
from clip_classifier.registry.service import HeadRegistry
from tests.fakes.registry import InMemoryHeadFiles, InMemoryHeadRecords
from tests.helpers import encode, rehash, small_doc

EMBEDDER = "e" * 64
MANIFEST = json.dumps({"output_dim": 4, "model_sha256": EMBEDDER}).encode()


def head(seed: float, **changes: object) -> bytes:
    doc = small_doc(**changes)
    doc["layers"][0]["bias"] = [seed, 0.1, -0.1]
    return encode(rehash(doc))


def registry(manifest: bytes | None = MANIFEST) -> HeadRegistry:
    ticks = count()
    files = InMemoryHeadFiles(manifest=manifest)
    return HeadRegistry(
        InMemoryHeadRecords(), files, clock=lambda: f"2026-12-03T00:00:{next(ticks):02d}.000Z"
    )


def test_registration_keeps_the_file_and_a_record_and_is_idempotent() -> None:
    reg = registry()
    record, new = reg.register(head(0.0), by="alice", location="a.json")
    assert new and record.status == "candidate" and record.registered_by == "alice"
    assert record.classes == ["a", "b"] and record.input_dim == 4 and record.head_type == "mlp"
    assert reg.files.get_head(record.version) == head(0.0)
    again, new_again = reg.register(head(0.0), by="bob", location="a-copy.json")
    assert not new_again and again.registered_by == "alice"
    assert [r.version for r in reg.list()] == [record.version]


def test_registration_refuses_what_the_functions_would_refuse_with_the_reason() -> None:
    reg = registry()
    with pytest.raises(WeightsMismatchError, match="expects 512 features but the embedder this stack serves"):
        doc = json.loads(head(0.0))
        wide = small_doc(input_dim=512)
        wide["layers"][0]["weight"] = [[0.01] * 512 for _ in range(3)]
        reg.register(encode(rehash(wide)), by="alice", location="wide.json")
    made_for_other = small_doc(
        provenance={"created_at": "2026-01-01T00:00:00Z", "embedder_sha256": ["f" * 64]}
    )
    with pytest.raises(WeightsMismatchError, match="was made for the embedder ffffffffffff"):
        reg.register(encode(made_for_other), by="alice", location="other.json")
    doc["content_sha256"] = "1" * 64
    with pytest.raises(WeightsIntegrityError, match="is corrupt"):
        reg.register(encode(doc), by="alice", location="tampered.json")
    assert reg.list() == [] and reg.files.heads == {}


def test_without_the_deployed_model_nothing_is_registered() -> None:
    with pytest.raises(RegistryError, match="heads init --model-dir"):
        registry(manifest=None).register(head(0.0), by="alice", location="a.json")


def test_versions_resolve_by_prefix_and_unknown_or_ambiguous_ones_are_refused() -> None:
    reg = registry()
    versions = [reg.register(head(s / 10), by="a", location="x")[0].version for s in range(40)]
    target = versions[0]
    assert reg.resolve(target[:12]).version == target
    assert reg.resolve(target.upper()).version == target
    with pytest.raises(UnknownHeadError, match="at least 6 hex digits"):
        reg.resolve("abc")
    with pytest.raises(UnknownHeadError, match="no registered head has version"):
        reg.resolve("0" * 64)
    # 40 random versions: some 1-digit prefix is shared by at least two (pigeonhole over 16 digits).
    shared = next(v[:1] for v in versions if sum(w.startswith(v[:1]) for w in versions) > 1)
    with pytest.raises(UnknownHeadError):
        reg.resolve(shared)  # too short to be a prefix at all
    six = {v[:6] for v in versions}
    assert len(six) == len(versions)
    ambiguous = InMemoryHeadRecords()
    for v in ("abcdef" + "0" * 58, "abcdef" + "1" * 58):
        ambiguous.records[v] = reg.records.get(target).model_copy(update={"version": v})  # type: ignore[union-attr]
    with pytest.raises(AmbiguousVersionError, match="give more digits"):
        HeadRegistry(ambiguous, reg.files, clock=reg.clock).resolve("abcdef")


def test_activate_publishes_with_who_and_when_and_rollback_steps_back() -> None:
    reg = registry()
    first = reg.register(head(0.0), by="alice", location="a")[0]
    second = reg.register(head(0.5), by="bob", location="b")[0]
    activation = reg.activate(first.version, by="carol")
    assert activation.previous is None and not activation.unchanged
    served = reg.files.served()
    assert served is not None and served["head-version"] == first.version
    assert served["activated-by"] == "carol" and served["registered-by"] == "alice"
    reg.activate(second.version, by="dave")
    assert reg.active() == ActivePointer(
        version=second.version,
        previous=[first.version],
        activated_by="dave",
        activated_at=reg.active().activated_at,  # type: ignore[union-attr]
        revision=2,
    )
    statuses = {r.version: r.status for r in reg.list()}
    assert statuses == {first.version: "retired", second.version: "active"}
    back = reg.rollback(by="erin")
    assert back.record.version == first.version and back.previous == second.version
    assert reg.files.served()["head-version"] == first.version  # type: ignore[index]
    assert reg.active().previous == [] and reg.active().revision == 3  # type: ignore[union-attr]
    with pytest.raises(NothingToRollBackError):
        reg.rollback(by="erin")


def test_activating_the_active_head_changes_nothing_but_finishes_a_half_done_activation() -> None:
    reg = registry()
    first = reg.register(head(0.0), by="a", location="a")[0]
    reg.activate(first.version, by="a")
    publishes = reg.files.publishes
    assert reg.activate(first.version, by="b").unchanged
    assert reg.files.publishes == publishes
    reg.files.active = None  # the pointer moved but the publish was lost
    assert reg.activate(first.version, by="b").unchanged
    assert reg.files.served()["head-version"] == first.version  # type: ignore[index]


def test_a_concurrent_activation_makes_the_loser_retry_and_changes_nothing() -> None:
    reg = registry()
    a, b, c = (reg.register(head(s), by="x", location="x")[0] for s in (0.0, 0.3, 0.6))
    reg.activate(a.version, by="x")
    records = reg.records
    assert isinstance(records, InMemoryHeadRecords)
    real_active = records.active

    def stale() -> ActivePointer | None:  # both operators read revision 1 ...
        pointer = real_active()
        assert pointer is not None
        return pointer.model_copy(update={"revision": 1})

    reg.activate(b.version, by="first")  # ... and the first one wins (revision 2)
    records.active = stale  # type: ignore[method-assign]
    with pytest.raises(RegistryConflictError, match="nothing was changed"):
        reg.activate(c.version, by="second")
    records.active = real_active  # type: ignore[method-assign]
    assert reg.active().version == b.version  # type: ignore[union-attr]
    assert reg.files.served()["head-version"] == b.version  # type: ignore[index]


def test_activation_waits_for_a_running_evaluation_unless_told_not_to() -> None:
    reg = registry()
    a, b = (reg.register(head(s), by="x", location="x")[0] for s in (0.0, 0.3))
    reg.activate(a.version, by="x")
    ref = EvaluationRef(run_id="r1", against=a.version, started_at="2026-12-03T00:01:00Z", started_by="x")
    reg.records.put_evaluation(b.version, ref)
    with pytest.raises(EvaluationRunningError, match="evaluation r1 still running"):
        reg.activate(b.version, by="x")
    reg.evaluation_running = lambda ref: False  # its execution died: the mark is stale
    assert reg.activate(b.version, by="x").record.version == b.version
    reg.evaluation_running = lambda ref: True
    assert reg.activate(a.version, by="x", wait_for_evaluation=False).record.version == a.version


def test_activation_refuses_a_head_for_another_model_deployed_since_it_was_registered() -> None:
    reg = registry()
    a = reg.register(head(0.0), by="x", location="x")[0]
    assert isinstance(reg.files, InMemoryHeadFiles)
    reg.files.manifest = json.dumps({"output_dim": 8, "model_sha256": "d" * 64}).encode()
    with pytest.raises(WeightsMismatchError, match="expects 4 features"):
        reg.activate(a.version, by="x")
    assert reg.active() is None


def test_the_history_is_bounded() -> None:
    reg = registry()
    heads = [reg.register(head(s / 100), by="x", location="x")[0] for s in range(MAX_HISTORY + 3)]
    for h in heads:
        reg.activate(h.version, by="x")
    assert len(reg.active().previous) == MAX_HISTORY  # type: ignore[union-attr]
    assert reg.active().previous[0] == heads[-2].version  # type: ignore[union-attr]


def test_the_cli_refuses_an_oversized_head_file_before_reading_it(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from clip_classifier.cli.heads import Operator, add_head
    from clip_classifier.exceptions import WeightsTooLargeError

    big = Path(str(tmp_path)) / "big.json"
    with big.open("wb") as fh:
        fh.truncate(17 * 1024 * 1024)  # sparse: its size says it all

    def unread(self: Path) -> bytes:
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(Path, "read_bytes", unread)
    operator = Operator(
        registry(), reports=None, states=None, evaluate_machine="", rescore_machine="", who="x"
    )  # type: ignore[arg-type]
    with pytest.raises(WeightsTooLargeError, match="the limit is 16,777,216"):
        add_head(operator, big)
