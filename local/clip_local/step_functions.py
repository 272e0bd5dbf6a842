"""The state machines of ``infra/statemachines/``, run locally against moto: a strict interpreter of the
Amazon States Language subset they use.

Docker-free Step Functions emulators do not run Distributed Map batching (moto's interpreter has no
``ItemBatcher``), so this one runs the committed definition files themselves, with the template's
substitutions, and refuses any state type, field or intrinsic it does not implement rather than ignore it:
a definition cannot use a feature the local run skips. The definitions are separately checked against
cfn-lint's Amazon States Language schema (``tests/unit/test_state_machines.py``).

What it implements: ``Pass`` (``Parameters``, ``Result``, ``ResultPath``), ``Choice`` (``IsPresent``,
``BooleanEquals``, ``StringEquals``, ``NumericEquals``, ``And``/``Or``/``Not``), ``Wait``, ``Succeed``,
``Fail``, ``Task`` on ``arn:aws:states:::lambda:invoke`` (``Retry`` with backoff and jitter, errors named by
the function's exception type as Lambda reports them), and ``Map`` in ``DISTRIBUTED`` mode: ``ItemReader``
(``s3:listObjectsV2``, or an S3 Inventory ``MANIFEST`` of CSV files), ``ItemsPath``, ``ItemSelector``,
``ItemBatcher`` (``MaxItemsPerBatch``, ``BatchInput``), ``MaxConcurrency``, ``ToleratedFailurePercentage``,
``ResultWriter`` (``manifest.json``, ``SUCCEEDED_0.json``, ``FAILED_0.json``), and redrive of a map run's
failed children. JSONPath: ``$``, dotted fields, ``$$.Execution.*`` and ``$$.Map.Item.*``; intrinsics
``States.StringToJson``, ``States.ArrayRange``, ``States.MathAdd``, ``States.Format``.

Local differences, on purpose: ``Wait`` states are scaled by ``wait_scale`` (default 0: a local run has no
warm instances holding an old head, so nothing to wait for), each visit recorded with the seconds the
definition asked for. Retry intervals are kept (``retry_scale`` 1): backing off is what lets an overloaded
dependency recover, locally as in AWS.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clip_classifier.aws import AWS_ERRORS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
ACCOUNT = "000000000000"
REGION = "us-east-1"

_FIELDS: dict[str, set[str]] = {
    "Pass": {"Type", "Comment", "Parameters", "Result", "ResultPath", "Next", "End"},
    "Choice": {"Type", "Comment", "Choices", "Default"},
    "Wait": {"Type", "Comment", "Seconds", "SecondsPath", "Next", "End"},
    "Succeed": {"Type", "Comment"},
    "Fail": {"Type", "Comment", "Error", "Cause"},
    "Task": {"Type", "Comment", "Resource", "Parameters", "OutputPath", "ResultPath", "Retry", "Next", "End"},
    "Map": {
        "Type", "Comment", "Label", "ItemReader", "ItemsPath", "ItemSelector", "ItemBatcher", "MaxConcurrency",
        "MaxConcurrencyPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath", "ResultWriter",
        "ItemProcessor", "ResultPath", "Next", "End",
    },
}  # fmt: skip
_RETRY_FIELDS = {
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "JitterStrategy",
    "MaxDelaySeconds",
}


#: The most bytes the local interpreter reads of a manifest or one of its files, and decompresses of a file.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024


class InventoryFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str = Field(min_length=1)


class InventoryManifest(BaseModel):
    """The parts of an S3 Inventory ``manifest.json`` the item reader uses."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    file_format: Literal["CSV"] = Field(alias="fileFormat")
    file_schema: str = Field(alias="fileSchema", min_length=1)
    destination_bucket: str = Field(alias="destinationBucket", min_length=3)
    files: list[InventoryFile] = Field(min_length=1)


def _decompressed(data: bytes, name: str) -> bytes:
    """gunzip with a bound: a small file that inflates past :data:`MAX_DECOMPRESSED_BYTES` fails the state."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(MAX_DECOMPRESSED_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise StatesError("States.ItemReaderFailed", f"{name} is not a gzip file ({exc})") from exc
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise StatesError("States.ItemReaderFailed", f"{name} inflates past {MAX_DECOMPRESSED_BYTES:,} bytes")
    return out


class UnsupportedDefinition(ValueError):
    """The definition uses something this interpreter does not implement."""


class StatesError(Exception):
    """A state failed with an Amazon States Language error name (``States.TaskFailed``, an exception type)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class FunctionError(Exception):
    """What a local Lambda function raised, as the Lambda service reports it (``errorType``)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


#: A local Lambda function: the payload in, the function's result out; raises :class:`FunctionError`.
LocalFunction = Callable[[Any], Any]


@dataclass
class ChildRun:
    input: Any
    status: str = "PENDING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class MapRun:
    label: str
    arn: str
    children: list[ChildRun]
    #: What the run needs to re-run failed children (redrive).
    processor: dict[str, Any]
    concurrency: int

    @property
    def failed(self) -> list[ChildRun]:
        return [c for c in self.children if c.status == "FAILED"]


@dataclass
class Execution:
    name: str
    start_time: str
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    #: States entered, in order, with what a Wait or Retry asked for.
    history: list[dict[str, Any]] = field(default_factory=list)
    map_runs: list[MapRun] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- JSONPath and intrinsics ---------------------------------------------------------------------------

_PATH = re.compile(r"^\$\$?(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _get(document: Any, path: str) -> Any:
    if not _PATH.match(path):
        raise UnsupportedDefinition(f"JSONPath {path!r} (only $, $$ and dotted fields are implemented)")
    value = document
    for part in path.lstrip("$").split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            raise StatesError("States.Runtime", f"the path {path!r} matches nothing")
        value = value[part]
    return value


def _present(document: Any, path: str) -> bool:
    try:
        _get(document, path)
    except StatesError:
        return False
    return True


def _split_arguments(text: str) -> list[str]:
    parts, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == "'" and not current.endswith("\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def _intrinsic(expression: str, resolve: Callable[[str], Any]) -> Any:
    match = re.fullmatch(r"(States\.[A-Za-z]+)\((.*)\)", expression.strip(), re.DOTALL)
    if not match:
        raise UnsupportedDefinition(f"not an intrinsic function call: {expression!r}")
    name, inner = match.groups()
    args = [_argument(a, resolve) for a in _split_arguments(inner)]
    if name == "States.StringToJson":
        return json.loads(args[0])
    if name == "States.MathAdd":
        if not all(isinstance(a, int) for a in args):
            raise StatesError("States.Runtime", f"States.MathAdd takes integers, got {args}")
        return args[0] + args[1]
    if name == "States.ArrayRange":
        start, end, step = args
        values = list(range(start, end + (1 if step > 0 else -1), step))
        if len(values) > 1000:
            raise StatesError("States.Runtime", "States.ArrayRange makes at most 1000 elements")
        return values
    if name == "States.Format":
        template, *rest = args
        pieces = template.split("{}")
        return "".join(p + (str(rest[i]) if i < len(rest) else "") for i, p in enumerate(pieces))
    raise UnsupportedDefinition(f"intrinsic {name} is not implemented")


def _argument(text: str, resolve: Callable[[str], Any]) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'")
    if text.startswith("$"):
        return resolve(text)
    if text.startswith("States."):
        return _intrinsic(text, resolve)
    return json.loads(text)


def _evaluate(template: Any, document: Any, context: dict[str, Any]) -> Any:
    """``Parameters``-style templates: keys ending in ``.$`` take a path or an intrinsic's value."""

    def resolve(path: str) -> Any:
        return _get(context, path[1:]) if path.startswith("$$") else _get(document, path)

    if isinstance(template, dict):
        result: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                result[key[:-2]] = (
                    _intrinsic(value, resolve) if value.startswith("States.") else resolve(value)
                )
            else:
                result[key] = _evaluate(value, document, context)
        return result
    if isinstance(template, list):
        return [_evaluate(v, document, context) for v in template]
    return template


def _put(document: Any, path: str | None, value: Any) -> Any:
    """``ResultPath``: replace (``$``), discard (``None``) or set one dotted field."""
    if path is None:
        return document
    if path == "$":
        return value
    if not _PATH.match(path) or path.startswith("$$"):
        raise UnsupportedDefinition(f"ResultPath {path!r}")
    result = json.loads(json.dumps(document))
    target = result
    parts = path.split(".")[1:]
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return result


# --- the interpreter -----------------------------------------------------------------------------------


class LocalStepFunctions:
    """Runs definitions to completion (synchronously) against an S3 client and local Lambda functions."""

    def __init__(
        self,
        s3: S3Client,
        functions: Mapping[str, LocalFunction],
        *,
        wait_scale: float = 0.0,
        retry_scale: float = 1.0,
        on_child_done: Callable[[MapRun, ChildRun], None] | None = None,
        seed: int = 0,
    ) -> None:
        self.s3 = s3
        self.functions = dict(functions)
        self.wait_scale = wait_scale
        self.retry_scale = retry_scale
        self.on_child_done = on_child_done
        self._random = random.Random(seed)  # noqa: S311 - retry jitter, not security
        self._lock = threading.Lock()

    def start(
        self, definition: dict[str, Any], execution_input: Any = None, *, name: str | None = None
    ) -> Execution:
        execution = Execution(name=name or uuid.uuid4().hex, start_time=_now())
        context = {"Execution": {"Name": execution.name, "StartTime": execution.start_time}}
        try:
            execution.output = self._run(
                definition, {} if execution_input is None else execution_input, context, execution
            )
            execution.status = "SUCCEEDED"
        except StatesError as exc:
            execution.status, execution.error, execution.cause = "FAILED", exc.error, exc.cause
        return execution

    def redrive(self, execution: Execution) -> Execution:
        """Re-run the failed children of the execution's map runs (as ``RedriveExecution`` does)."""
        for run in execution.map_runs:
            self._children(run, run.failed, execution)
        if all(not run.failed for run in execution.map_runs):
            execution.status, execution.error, execution.cause = "SUCCEEDED", None, None
        return execution

    def _record(self, execution: Execution, entry: dict[str, Any]) -> None:
        with self._lock:
            execution.history.append(entry)

    def _run(
        self, machine: dict[str, Any], document: Any, context: dict[str, Any], execution: Execution
    ) -> Any:
        states: dict[str, Any] = machine["States"]
        name: str | None = machine["StartAt"]
        while name is not None:
            state = states[name]
            kind = state.get("Type")
            if kind not in _FIELDS:
                raise UnsupportedDefinition(f"state {name!r}: type {kind!r}")
            unknown = set(state) - _FIELDS[kind]
            if unknown:
                raise UnsupportedDefinition(f"state {name!r}: fields {sorted(unknown)}")
            self._record(execution, {"state": name, "type": kind})
            if kind == "Succeed":
                return document
            if kind == "Fail":
                raise StatesError(state.get("Error", "States.Fail"), state.get("Cause", ""))
            if kind == "Choice":
                name = self._choose(state, document)
                continue
            if kind == "Pass":
                result = (
                    _evaluate(state["Parameters"], document, context)
                    if "Parameters" in state
                    else state.get("Result", document)
                )
                document = _put(document, state.get("ResultPath", "$"), result)
            elif kind == "Wait":
                seconds = state["Seconds"] if "Seconds" in state else _get(document, state["SecondsPath"])
                self._record(execution, {"state": name, "wait_seconds": seconds})
                time.sleep(float(seconds) * self.wait_scale)
            elif kind == "Task":
                result = self._task(state, document, context, execution, name)
                if "OutputPath" in state:
                    result = _get(result, state["OutputPath"])
                document = _put(document, state.get("ResultPath", "$"), result)
            elif kind == "Map":
                result = self._map(state, document, context, execution, name)
                document = _put(document, state.get("ResultPath", "$"), result)
            name = None if state.get("End") else state["Next"]
        return document

    def _choose(self, state: dict[str, Any], document: Any) -> str:
        for rule in state["Choices"]:
            if self._rule(rule, document):
                return str(rule["Next"])
        if "Default" not in state:
            raise StatesError("States.NoChoiceMatched", "no choice rule matched")
        return str(state["Default"])

    def _rule(self, rule: dict[str, Any], document: Any) -> bool:
        if "And" in rule:
            return all(self._rule(r, document) for r in rule["And"])
        if "Or" in rule:
            return any(self._rule(r, document) for r in rule["Or"])
        if "Not" in rule:
            return not self._rule(rule["Not"], document)
        path = rule["Variable"]
        if "IsPresent" in rule:
            return _present(document, path) is bool(rule["IsPresent"])
        if not _present(document, path):
            raise StatesError("States.Runtime", f"choice variable {path!r} is not present")
        value = _get(document, path)
        for operator, kind in (
            ("BooleanEquals", bool),
            ("StringEquals", str),
            ("NumericEquals", (int, float)),
        ):
            if operator in rule:
                return isinstance(value, kind) and bool(value == rule[operator])
        raise UnsupportedDefinition(f"choice rule {sorted(rule)}")

    # --- Task: lambda:invoke with Retry ---------------------------------------------------------------

    def _task(
        self, state: dict[str, Any], document: Any, context: dict[str, Any], execution: Execution, name: str
    ) -> Any:
        if state["Resource"] != LAMBDA_INVOKE:
            raise UnsupportedDefinition(f"task resource {state['Resource']}")
        parameters = _evaluate(state["Parameters"], document, context)
        function = self.functions.get(parameters["FunctionName"])
        if function is None:
            raise StatesError("Lambda.ResourceNotFoundException", f"no function {parameters['FunctionName']}")
        retriers = state.get("Retry", [])
        for retrier in retriers:
            unknown = set(retrier) - _RETRY_FIELDS
            if unknown:
                raise UnsupportedDefinition(f"Retry fields {sorted(unknown)}")
        attempts = [0] * len(retriers)
        while True:
            try:
                payload = function(json.loads(json.dumps(parameters.get("Payload"))))
            except FunctionError as exc:
                error, cause = exc.error_type, exc.message
            else:
                return {"Payload": payload, "StatusCode": 200, "ExecutedVersion": "$LATEST"}
            # The first retrier that names the error applies; once its attempts are spent, the error stands.
            index = next(
                (
                    i
                    for i, r in enumerate(retriers)
                    if error in r["ErrorEquals"] or "States.ALL" in r["ErrorEquals"]
                ),
                None,
            )
            if index is None or attempts[index] >= retriers[index].get("MaxAttempts", 3):
                raise StatesError(error, cause)
            retrier = retriers[index]
            delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** attempts[index]
            delay = min(delay, retrier.get("MaxDelaySeconds", delay))
            if retrier.get("JitterStrategy") == "FULL":
                with self._lock:
                    delay = self._random.uniform(0, delay)
            attempts[index] += 1
            self._record(execution, {"state": name, "retry": error, "delay_seconds": round(delay, 3)})
            time.sleep(delay * self.retry_scale)

    # --- Map (DISTRIBUTED) ----------------------------------------------------------------------------

    def _map(
        self, state: dict[str, Any], document: Any, context: dict[str, Any], execution: Execution, name: str
    ) -> Any:
        processor = state["ItemProcessor"]
        config = processor.get("ProcessorConfig", {})
        if config.get("Mode") != "DISTRIBUTED":
            raise UnsupportedDefinition(f"map {name!r}: only DISTRIBUTED mode is implemented")
        items = self._items(state, document, context)
        if "ItemSelector" in state:
            items = [
                _evaluate(
                    state["ItemSelector"], document, {**context, "Map": {"Item": {"Value": v, "Index": i}}}
                )
                for i, v in enumerate(items)
            ]
        inputs: list[Any] = items
        batcher = state.get("ItemBatcher")
        if batcher is not None:
            unknown = set(batcher) - {"MaxItemsPerBatch", "MaxItemsPerBatchPath", "BatchInput"}
            if unknown:
                raise UnsupportedDefinition(f"ItemBatcher fields {sorted(unknown)}")
            size = int(
                batcher["MaxItemsPerBatch"]
                if "MaxItemsPerBatch" in batcher
                else _get(document, batcher["MaxItemsPerBatchPath"])
            )
            batch_input = _evaluate(batcher.get("BatchInput", {}), document, context)
            inputs = [
                {"Items": items[i : i + size], "BatchInput": batch_input} for i in range(0, len(items), size)
            ]
        concurrency = int(
            state["MaxConcurrency"]
            if "MaxConcurrency" in state
            else _get(document, state["MaxConcurrencyPath"])
            if "MaxConcurrencyPath" in state
            else 1000
        )
        tolerated = float(
            state["ToleratedFailurePercentage"]
            if "ToleratedFailurePercentage" in state
            else _get(document, state["ToleratedFailurePercentagePath"])
            if "ToleratedFailurePercentagePath" in state
            else 0
        )
        label = state.get("Label", name)
        run = MapRun(
            label=label,
            arn=f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{execution.name}/{label}:{uuid.uuid4().hex[:8]}",
            children=[ChildRun(input=i) for i in inputs],
            processor=processor,
            concurrency=max(1, concurrency or 1000),
        )
        execution.map_runs.append(run)
        self._record(execution, {"state": name, "map_children": len(inputs), "concurrency": run.concurrency})
        self._children(run, run.children, execution)
        failed = len(run.failed)
        writer = state.get("ResultWriter")
        output: Any = [c.output for c in run.children]
        if writer is not None:
            output = self._write_results(writer, run, document, context)
        if run.children and failed * 100 / len(run.children) > tolerated:
            raise StatesError(
                "States.ExceedToleratedFailureThreshold",
                f"{failed} of {len(run.children)} children failed; {tolerated}% are tolerated",
            )
        return output

    def _children(self, run: MapRun, children: list[ChildRun], execution: Execution) -> None:
        child_machine = {"StartAt": run.processor["StartAt"], "States": run.processor["States"]}

        def one(child: ChildRun) -> None:
            context = {"Execution": {"Name": child.name, "StartTime": _now()}}
            try:
                child.output = self._run(child_machine, child.input, context, execution)
                child.status, child.error, child.cause = "SUCCEEDED", None, None
            except StatesError as exc:
                child.status, child.error, child.cause = "FAILED", exc.error, exc.cause
            if self.on_child_done is not None:
                self.on_child_done(run, child)

        with ThreadPoolExecutor(max_workers=min(run.concurrency, max(1, len(children)))) as pool:
            list(pool.map(one, children))

    def _items(self, state: dict[str, Any], document: Any, context: dict[str, Any]) -> list[Any]:
        reader = state.get("ItemReader")
        if reader is None:
            items = _get(document, state.get("ItemsPath", "$"))
            if not isinstance(items, list):
                raise StatesError("States.Runtime", "the map's items are not an array")
            return items
        parameters = _evaluate(reader.get("Parameters", {}), document, context)
        if reader["Resource"] == "arn:aws:states:::s3:listObjectsV2":
            return self._listing(parameters["Bucket"], parameters.get("Prefix", ""))
        if (
            reader["Resource"] == "arn:aws:states:::s3:getObject"
            and reader.get("ReaderConfig", {}).get("InputType") == "MANIFEST"
        ):
            return self._inventory(parameters["Bucket"], parameters["Key"])
        raise UnsupportedDefinition(f"ItemReader {reader['Resource']} {reader.get('ReaderConfig')}")

    def _listing(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        items = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                items.append(
                    {
                        "Etag": entry["ETag"],
                        "Key": entry["Key"],
                        "LastModified": int(entry["LastModified"].timestamp()),
                        "Size": entry["Size"],
                        "StorageClass": entry.get("StorageClass", "STANDARD"),
                    }
                )
        return items

    def _inventory(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """The rows of an S3 Inventory report (CSV, gzipped or not) its manifest names. A manifest that is
        not one, a file larger than it may be once decompressed, or a row of another width fails the state
        with ``States.ItemReaderFailed`` and a message that says which."""

        def failed(message: str) -> StatesError:
            return StatesError("States.ItemReaderFailed", f"manifest s3://{bucket}/{key}: {message}")

        try:
            raw = self._read(bucket, key, MAX_MANIFEST_BYTES)
            manifest = InventoryManifest.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise failed(f"not an S3 Inventory manifest ({problems})") from exc
        columns = [c.strip() for c in manifest.file_schema.split(",")]
        if "Key" not in columns:
            raise failed(f"fileSchema {manifest.file_schema!r} has no Key column")
        data_bucket = manifest.destination_bucket.rsplit(":", 1)[-1]
        items = []
        for entry in manifest.files:
            body = self._read(data_bucket, entry.key, MAX_MANIFEST_BYTES)
            text = _decompressed(body, entry.key) if entry.key.endswith(".gz") else body
            try:
                rows = csv.reader(io.StringIO(text.decode("utf-8")))
                for number, row in enumerate(rows, 1):
                    if len(row) != len(columns):
                        raise failed(
                            f"{entry.key} row {number} has {len(row)} columns; fileSchema has {len(columns)}"
                        )
                    items.append(dict(zip(columns, row, strict=True)))
            except (UnicodeDecodeError, csv.Error) as exc:
                raise failed(f"{entry.key} is not a UTF-8 CSV file ({exc})") from exc
        return items

    def _read(self, bucket: str, key: str, limit: int) -> bytes:
        """An object's bytes, at most ``limit`` of them."""
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
            if int(response.get("ContentLength", 0)) > limit:
                raise StatesError("States.ItemReaderFailed", f"s3://{bucket}/{key} is over {limit:,} bytes")
            data: bytes = response["Body"].read(limit + 1)
        except AWS_ERRORS as exc:  # the state fails, as in AWS
            raise StatesError("States.ItemReaderFailed", f"cannot read s3://{bucket}/{key}: {exc}") from exc
        return data

    def _write_results(
        self, writer: dict[str, Any], run: MapRun, document: Any, context: dict[str, Any]
    ) -> dict[str, Any]:
        parameters = _evaluate(writer.get("Parameters", {}), document, context)
        bucket, prefix = parameters["Bucket"], parameters.get("Prefix", "").rstrip("/")
        folder = f"{prefix}/{run.arn.rsplit(':', 1)[-1]}"
        files: list[dict[str, Any]] = []
        for status in ("SUCCEEDED", "FAILED"):
            records = [
                {
                    "Name": c.name,
                    "Status": c.status,
                    "Input": json.dumps(c.input),
                    **(
                        {"Output": json.dumps(c.output)}
                        if c.status == "SUCCEEDED"
                        else {"Error": c.error, "Cause": c.cause}
                    ),
                }
                for c in run.children
                if c.status == status
            ]
            if records:
                key = f"{folder}/{status}_0.json"
                self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(records).encode())
                files.append({"Key": key, "Size": len(records)})
        manifest_key = f"{folder}/manifest.json"
        summary = {
            "DestinationBucket": bucket,
            "MapRunArn": run.arn,
            "ResultFiles": {
                "SUCCEEDED": [f for f in files if "SUCCEEDED" in f["Key"]],
                "FAILED": [f for f in files if "FAILED" in f["Key"]],
            },
        }
        self.s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(summary).encode())
        return {"MapRunArn": run.arn, "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key}}
