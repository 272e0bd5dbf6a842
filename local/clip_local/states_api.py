"""The local stack's state machines behind the Step Functions API, so ``clip-classifier --local`` starts and
follows them with the same boto3 calls it makes against AWS (``StartExecution``, ``DescribeExecution``).

AWS JSON 1.0 over HTTP on 127.0.0.1: the operation is the ``X-Amz-Target`` header, the request and the
response are JSON. Each execution runs in a thread of this process, on the committed definition
(:class:`~.jobs.LocalJobs`); only these two operations exist, and any other is a 400 naming it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .jobs import LocalJobs

ACCOUNT = "000000000000"
REGION = "us-east-1"


def state_machine_arn(logical_id: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}"


@dataclass
class _Run:
    arn: str
    machine: str
    name: str
    input: str
    started: float
    status: str = "RUNNING"
    stopped: float | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


class _Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class LocalStatesApi:
    """``StartExecution``/``DescribeExecution`` for the state machines ``machines`` names (logical ids)."""

    def __init__(self, jobs: LocalJobs, machines: list[str], *, port: int = 0) -> None:
        self.jobs = jobs
        self.machines = {state_machine_arn(m): m for m in machines}
        self.runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                target = self.headers.get("X-Amz-Target", "")
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    status, answer = 200, api.call(target.rpartition(".")[2], body)
                except _Refused as exc:
                    status, answer = 400, {"__type": exc.kind, "message": exc.message}
                except ValueError as exc:
                    status, answer = 400, {"__type": "InvalidRequest", "message": str(exc)}
                data = json.dumps(answer, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LocalStatesApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for run in list(self.runs.values()):
            if run.thread is not None:
                run.thread.join(timeout=60)

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if operation == "StartExecution":
            return self.start_execution(body)
        if operation == "DescribeExecution":
            return self.describe(body)
        raise _Refused("UnknownOperationException", f"the local stack does not serve {operation or 'that'}")

    def start_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        machine_arn = str(body.get("stateMachineArn", ""))
        logical_id = self.machines.get(machine_arn)
        if logical_id is None:
            raise _Refused("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{machine_arn}'")
        name = str(body.get("name") or f"run-{time.time_ns()}")
        arn = machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
        execution_input = json.loads(body.get("input") or "{}")
        with self._lock:
            if arn in self.runs:
                raise _Refused("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            run = _Run(arn, machine_arn, name, json.dumps(execution_input), time.time())
            self.runs[arn] = run
        run.thread = threading.Thread(target=self._run, args=(run, logical_id, execution_input), daemon=True)
        run.thread.start()
        return {"executionArn": arn, "startDate": run.started}

    def _run(self, run: _Run, logical_id: str, execution_input: Any) -> None:
        try:
            summary = self.jobs.run(logical_id, execution_input, name=run.name)
            run.output, run.error, run.cause = (
                summary.execution.output,
                summary.execution.error,
                summary.execution.cause,
            )
            run.status = summary.status
        except Exception as exc:  # noqa: BLE001 - whatever stops the interpreter fails the execution, as AWS would
            run.status, run.error, run.cause = "FAILED", type(exc).__name__, str(exc)
        run.stopped = time.time()

    def describe(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = str(body.get("executionArn", ""))
        run = self.runs.get(arn)
        if run is None:
            raise _Refused("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        answer: dict[str, Any] = {
            "executionArn": run.arn,
            "stateMachineArn": run.machine,
            "name": run.name,
            "status": run.status,
            "startDate": run.started,
            "input": run.input,
        }
        if run.stopped is not None:
            answer["stopDate"] = run.stopped
        if run.output is not None:
            answer["output"] = json.dumps(run.output)
        if run.error is not None:
            answer |= {"error": run.error, "cause": run.cause or ""}
        return answer
