"""``clip-classifier heads ...``: the registry's commands, each returning a table for people and a JSON
document for scripts (``--json``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clip_classifier.aws import AWS_ERRORS, error_code
from clip_classifier.cli.tables import pairs, percent, table
from clip_classifier.events.messages import HeadActivated
from clip_classifier.exceptions import EvaluationRunningError, RegistryError
from clip_classifier.head.weights_cache import check_size
from clip_classifier.model.manifest import load_manifest
from clip_classifier.ports import EventPublisher
from clip_classifier.registry.records import EvaluationRef, HeadRecord
from clip_classifier.registry.service import Activation, HeadRegistry
from clip_classifier.storage.evaluation_reports import S3EvaluationReports
from clip_classifier.storage.result_item import utc_now

#: Execution statuses that are over.
FINISHED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass(frozen=True)
class Output:
    text: str
    data: Any


@dataclass
class Operator:
    """What the commands act on (built by :mod:`clip_classifier.cli.main` for one target)."""

    registry: HeadRegistry
    reports: S3EvaluationReports
    states: Any
    evaluate_machine: str
    rescore_machine: str
    who: str
    refresh_seconds: float = 300.0
    poll_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    #: The stack's event bus (``PublishEvents``): activations are announced there.
    events: EventPublisher | None = None

    def execution_status(self, arn: str) -> str | None:
        try:
            return str(self.states.describe_execution(executionArn=arn)["status"])
        except AWS_ERRORS as exc:
            if error_code(exc) in ("ExecutionDoesNotExist", "ResourceNotFound"):
                return None
            raise RegistryError(f"cannot read execution {arn}: {exc}") from exc

    def evaluation_running(self, ref: EvaluationRef) -> bool:
        return (
            ref.status == "running"
            and ref.execution is not None
            and self.execution_status(ref.execution) == "RUNNING"
        )


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives an execution ``name`` of ``state_machine_arn``."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def _record_json(record: HeadRecord) -> dict[str, Any]:
    return {**record.model_dump(by_alias=True, mode="json"), "source": record.source}


# --- list, add, show --------------------------------------------------------------------------------


def list_heads(op: Operator) -> Output:
    records = op.registry.list()
    pointer = op.registry.active()
    served = op.registry.files.served() or {}
    rows: list[list[str | int | float | None]] = []
    for r in records:
        latest = r.latest_evaluation
        agreement = latest.summary.agreement if latest and latest.summary else None
        rows.append(
            [
                r.version[:12],
                r.status,
                r.head_type,
                len(r.classes),
                r.registered_at[:19],
                percent(agreement)
                if latest and latest.status == "succeeded"
                else (latest.status if latest else "-"),
                r.source,
            ]
        )
    lines = [table(["version", "status", "type", "classes", "registered", "evaluated", "source"], rows)]
    served_version = served.get("head-version")
    if pointer is not None:
        lines.append(
            f"\nactive: {pointer.version[:12]} (by {pointer.activated_by}, {pointer.activated_at[:19]})"
        )
        if pointer.previous:
            lines.append(f"rollback would return to {pointer.previous[0][:12]}")
    if served_version and pointer is not None and served_version != pointer.version:
        lines.append(
            f"note: the functions serve {served_version[:12]}, not the active {pointer.version[:12]}: an activation "
            "stopped half way; run 'heads activate' again to finish it"
        )
    data = {
        "heads": [_record_json(r) for r in records],
        "active": pointer.model_dump(by_alias=True) if pointer else None,
        "served": served_version,
    }
    return Output("\n".join(lines), data)


def add_head(op: Operator, path: Path) -> Output:
    try:
        check_size(path.stat().st_size, str(path))  # refused before a byte is read, as the functions do
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror or exc}") from exc
    record, new = op.registry.register(raw, by=op.who, location=str(path))
    verb = "registered" if new else "already registered"
    text = f"{verb} {record.version} ({record.head_type}, {len(record.classes)} classes): {record.source}"
    return Output(text, {"registered": new, "head": _record_json(record)})


def show_head(op: Operator, version: str) -> Output:
    record = op.registry.resolve(version)
    lines = [
        pairs(
            [
                ("version", record.version),
                ("status", record.status),
                ("type", record.head_type),
                ("source", record.source),
                ("input", f"{record.input_dim} features"),
                (
                    "made for",
                    ", ".join(s[:12] for s in record.embedder_sha256) or "any embedder of that size",
                ),
                ("ambiguity guard", "yes" if record.guarded else "no"),
                ("registered", f"{record.registered_at} by {record.registered_by}"),
                (
                    "activated",
                    f"{record.activated_at} by {record.activated_by}" if record.activated_at else None,
                ),
                ("classes", ", ".join(record.classes)),
            ]
        )
    ]
    evaluations = record.evaluations_newest_first()
    report = None
    if evaluations:
        lines.append("\nevaluations:")
        lines.append(
            table(
                ["run", "against", "status", "compared", "agreement", "started"],
                [
                    [
                        e.run_id,
                        e.against[:12],
                        e.status,
                        e.summary.compared if e.summary else None,
                        percent(e.summary.agreement) if e.summary else "-",
                        e.started_at[:19],
                    ]
                    for e in evaluations
                ],
            )
        )
        latest = next((e for e in evaluations if e.status == "succeeded" and e.report_key), None)
        if latest is not None and latest.report_key:
            report = op.reports.report(latest.report_key)
            lines.append("\n" + render_report(report))
    return Output("\n".join(lines), {"head": _record_json(record), "report": report})


def render_report(report: dict[str, Any]) -> str:
    """The evaluation report as people read it."""
    candidate, active = report["candidate"]["version"][:12], report["active"]["version"][:12]
    not_compared = ", ".join(f"{k} {v}" for k, v in report["notCompared"].items()) or "none"
    change = report["probabilityChange"]
    ambiguous = report["ambiguousRate"]
    lines = [
        f"evaluation {report.get('runId', '')}: candidate {candidate} against active {active}",
        pairs(
            [
                ("items compared", report["compared"]),
                ("not compared", not_compared),
                ("top label agrees", percent(report["agreement"])),
                ("top label flips", report["flips"]),
                ("ambiguous before", percent(ambiguous["before"])),
                ("ambiguous after", percent(ambiguous["after"])),
                ("mean largest change", change["mean"]),
                ("largest change", change["largest"][0]["change"] if change["largest"] else None),
            ]
        ),
    ]
    if report["largestFlips"]:
        lines += [
            "\nlargest flips (active → candidate):",
            table(
                ["active", "candidate", "items", "examples"],
                [
                    [f["active"], f["candidate"], f["items"], ", ".join(f["examples"])]
                    for f in report["largestFlips"]
                ],
            ),
        ]
    lines += [
        "\nper class (top label):",
        table(
            ["label", "before", "after", "change"],
            [
                [label, d["before"], d["after"], d["after"] - d["before"]]
                for label, d in report["distribution"].items()
            ],
        ),
    ]
    labelled = report["labelled"]
    if labelled["items"]:
        test = labelled["mcnemar"]
        lines += [
            "\nlabelled by people:",
            table(
                ["head", "accuracy", "macro-F1"],
                [
                    ["active", percent(labelled["activeAccuracy"]), labelled["activeMacroF1"]],
                    ["candidate", percent(labelled["candidateAccuracy"]), labelled["candidateMacroF1"]],
                ],
            ),
            f"McNemar ({test['method']}): candidate-only right {test['b']}, active-only right {test['c']}, "
            f"p = {test['pValue'] if test['pValue'] is None else format(test['pValue'], '.4g')}",
        ]
    else:
        lines.append(
            "\nlabelled by people: none yet (accuracy, macro-F1 and McNemar's test need labelled items)"
        )
    return "\n".join(lines)


# --- evaluate ---------------------------------------------------------------------------------------


def evaluate_head(op: Operator, version: str, *, wait: bool = True, timeout: float = 3600.0) -> Output:
    record = op.registry.resolve(version)
    pointer = op.registry.active()
    if pointer is None:
        raise RegistryError("no head is active yet: there is nothing to compare with (activate one first)")
    if pointer.version == record.version:
        raise RegistryError(f"head {record.version[:12]} is the active head: evaluate a candidate against it")
    latest = record.latest_evaluation
    if latest is not None and latest.status == "running" and op.evaluation_running(latest):
        raise EvaluationRunningError(
            f"head {record.version[:12]} has evaluation {latest.run_id} still running: wait for it (heads show "
            f"{record.version[:12]})"
        )
    run_id = f"eval-{record.version[:12]}-{_stamp()}"
    arn = execution_arn(op.evaluate_machine, run_id)
    ref = EvaluationRef(
        run_id=run_id, against=pointer.version, started_at=utc_now(), started_by=op.who, execution=arn
    )
    op.registry.records.put_evaluation(record.version, ref)
    try:
        op.states.start_execution(
            stateMachineArn=op.evaluate_machine,
            name=run_id,
            input=json.dumps({"candidate": record.version, "active": pointer.version}),
        )
    except AWS_ERRORS as exc:
        op.registry.records.put_evaluation(record.version, ref.model_copy(update={"status": "failed"}))
        raise RegistryError(f"cannot start the evaluation: {exc}") from exc
    if not wait:
        return Output(
            f"evaluation {run_id} started ({arn}); 'heads show {record.version[:12]}' shows its report when done",
            {"runId": run_id, "execution": arn, "status": "RUNNING"},
        )
    deadline = time.monotonic() + timeout
    status = "RUNNING"
    while time.monotonic() < deadline:
        status = op.execution_status(arn) or "RUNNING"
        if status in FINISHED:
            break
        op.sleep(op.poll_seconds)
    if status != "SUCCEEDED":
        described = op.states.describe_execution(executionArn=arn) if status in FINISHED else {}
        if status in FINISHED:
            op.registry.records.put_evaluation(record.version, ref.model_copy(update={"status": "failed"}))
        cause = f": {described.get('error', '')} {described.get('cause', '')}".rstrip() if described else ""
        raise RegistryError(f"evaluation {run_id} {status.lower().replace('_', ' ')}{cause}")
    done = op.registry.resolve(record.version).evaluations.get(run_id)
    if done is None or done.report_key is None:
        raise RegistryError(f"evaluation {run_id} finished without a report")
    report = op.reports.report(done.report_key)
    return Output(
        render_report(report), {"runId": run_id, "execution": arn, "status": status, "report": report}
    )


# --- activate, rollback, init -----------------------------------------------------------------------


def _activation_output(op: Operator, verb: str, activation: Activation, rescore: bool) -> Output:
    record = activation.record
    if activation.unchanged:
        text = f"{record.version[:12]} is already the active head (and served)"
    else:
        text = (
            f"{verb} {record.version[:12]} ({record.head_type}: {record.source}); every function serves it within "
            f"{op.refresh_seconds:.0f} s (WEIGHTS_REFRESH_SECONDS)"
        )
        if activation.previous:
            text += f"\nrollback returns to {activation.previous[:12]}"
    data: dict[str, Any] = {
        "active": record.version,
        "previous": activation.previous,
        "unchanged": activation.unchanged,
        "refreshSeconds": op.refresh_seconds,
    }
    if op.events is not None and not activation.unchanged:
        announced = HeadActivated(
            version=record.version,
            previous=activation.previous,
            head_type=record.head_type,
            classes=len(record.classes),
            activated_by=op.who,
            activated_at=utc_now(),
        )
        if op.events.publish([announced]):
            text += "\n(the Head Activated event was not published: EventBridge refused it)"
    if rescore and not activation.unchanged:
        name = f"rescore-{record.version[:12]}-{_stamp()}"
        try:
            started = op.states.start_execution(stateMachineArn=op.rescore_machine, name=name, input="{}")
        except AWS_ERRORS as exc:
            raise RegistryError(f"{verb}, but the rescore did not start: {exc}") from exc
        text += f"\nrescore started: {started['executionArn']}"
        data["rescore"] = started["executionArn"]
    return Output(text, data)


def activate_head(
    op: Operator, version: str, *, rescore: bool = False, wait_for_evaluation: bool = True
) -> Output:
    activation = op.registry.activate(version, by=op.who, wait_for_evaluation=wait_for_evaluation)
    return _activation_output(op, "activated", activation, rescore)


def rollback_head(op: Operator, *, rescore: bool = False) -> Output:
    activation = op.registry.rollback(by=op.who)
    return _activation_output(op, "rolled back to", activation, rescore)


def init_registry(op: Operator, model_dir: Path, head: Path | None) -> Output:
    """Record the deployed model (its manifest) and, with ``head``, register and activate a first head."""
    manifest_path = model_dir / "manifest.json"
    model = load_manifest(
        manifest_path
    )  # the functions' own reader: a file they would refuse is refused here
    manifest = manifest_path.read_bytes()
    op.registry.files.put_embedder(manifest)
    sha, dim = model.model_sha256, model.output_dim
    lines = [f"the registry checks heads against {model.model_id} ({sha[:12]}…, {dim} features)"]
    data: dict[str, Any] = {"embedder": {"modelSha256": sha, "outputDim": dim}}
    if head is not None:
        added = add_head(op, head)
        activated = activate_head(op, added.data["head"]["version"])
        lines += [added.text, activated.text]
        data |= {"head": added.data["head"], "activation": activated.data}
    return Output("\n".join(lines), data)
