"""The backfill, rescore and evaluation state machines on the local stack.

The committed definitions (``infra/statemachines/``) run in :class:`~.step_functions.LocalStepFunctions`
with the template's substitutions (its parameters at their defaults: batch size, concurrency, tolerated
failures, segments); their Lambda tasks go to worker processes, each one execution environment of the
function built by its own cold-start builder from the template's environment (``workers.sync_pool``).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .moto_server import LocalAws
from .step_functions import ChildRun, Execution, FunctionError, LocalFunction, LocalStepFunctions, MapRun
from .template import function_arn, function_timeout, state_machine_definition
from .workers import invoke_sync, sync_pool

BACKFILL = "BackfillStateMachine"
RESCORE = "RescoreStateMachine"
EVALUATE = "EvaluateStateMachine"
#: Execution environments per function: the issue's "4 concurrent workers" on a 2-core machine.
DEFAULT_WORKERS = 4


@dataclass
class JobSummary:
    """What a run did, summed over its children (backfill: per-key outcomes; rescore: per-item statuses)."""

    status: str
    children: int
    failed_children: int
    counts: dict[str, int]
    execution: Execution = field(repr=False)


def summarize(execution: Execution) -> JobSummary:
    counts: Counter[str] = Counter()
    children = failed = 0
    for run in execution.map_runs:
        for child in run.children:
            children += 1
            if child.status != "SUCCEEDED":
                failed += 1
                continue
            output = child.output or {}
            seen = {"items": output["seen"]} if isinstance(output.get("seen"), int) else {}
            counts.update(output.get("counts") or output.get("totals") or seen)
    return JobSummary(execution.status, children, failed, dict(counts), execution)


class LocalJobs:
    def __init__(
        self,
        aws: LocalAws,
        template: dict[str, Any],
        *,
        environments: dict[str, dict[str, str]],
        substitutions: dict[str, str | int | float],
        workers: int = DEFAULT_WORKERS,
        retry_scale: float = 1.0,
        quiet: bool = True,
    ) -> None:
        self.aws = aws
        self.template = template
        self.environments = environments
        self.substitutions = substitutions
        self.workers = workers
        self.retry_scale = retry_scale
        self.quiet = quiet
        self._cache = tempfile.TemporaryDirectory(prefix="clip-jobs-")
        self._pools: dict[str, ProcessPoolExecutor] = {}
        #: Function ARN → local function; tests may wrap one to inject faults.
        self.functions: dict[str, LocalFunction] = {
            function_arn("BackfillBatchFunction"): self._function("backfill_batch", "BackfillBatchFunction"),
            function_arn("RescoreResultsFunction"): self._function(
                "rescore_results", "RescoreResultsFunction"
            ),
            function_arn("EvaluateHeadsFunction"): self._function("evaluate_heads", "EvaluateHeadsFunction"),
        }

    def _function(self, name: str, logical_id: str) -> LocalFunction:
        def invoke(payload: Any) -> Any:
            pool = self._pools.get(name)
            if pool is None:
                pool = sync_pool(
                    name,
                    self.workers,
                    self.environments[logical_id],
                    self.aws.endpoint,
                    self._cache.name,
                    function_timeout(self.template, logical_id),
                    quiet=self.quiet,
                )
                self._pools[name] = pool
            ok, result = pool.submit(invoke_sync, payload).result()
            if not ok:
                raise FunctionError(result["errorType"], result["errorMessage"])
            return result

        return invoke

    @property
    def scratch(self) -> str:
        """A folder that lives as long as the jobs (the workers' /tmp roots are under it)."""
        return self._cache.name

    def definition(self, logical_id: str) -> dict[str, Any]:
        return state_machine_definition(self.template, logical_id, self.substitutions)

    def run(
        self,
        logical_id: str,
        execution_input: Any = None,
        *,
        on_child_done: Callable[[MapRun, ChildRun], None] | None = None,
        name: str | None = None,
    ) -> JobSummary:
        machine = LocalStepFunctions(
            self.aws.client("s3"), self.functions, retry_scale=self.retry_scale, on_child_done=on_child_done
        )
        return summarize(machine.start(self.definition(logical_id), execution_input, name=name))

    def redrive(self, summary: JobSummary) -> JobSummary:
        machine = LocalStepFunctions(self.aws.client("s3"), self.functions, retry_scale=self.retry_scale)
        return summarize(machine.redrive(summary.execution))

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(cancel_futures=True)
        self._pools.clear()
        self._cache.cleanup()
