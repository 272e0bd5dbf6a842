"""Several Lambda execution environments, emulated as worker processes.

Each worker imports the upload function itself (its own model, weights cache and boto3 clients, as a
separate Lambda instance has), talks to the same moto server, and applies Lambda's async retries and
on-failure destination (``AsyncInvoker``). Used by the load script and its test.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

_invoker: Any = None
_outcomes: dict[str, int] = {}


def _init(env: dict[str, str], dead_letter_queue_url: str, retries: int, worker_cache_root: str) -> None:
    global _invoker
    os.environ.update(env)
    # A worker's JSON logs and EMF lines would drown the load script's table.
    sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - for the life of the worker process
    # With metrics disabled (the load script's quiet env), Powertools warns at every cold start that there
    # was nothing to publish.
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    # Every execution environment has its own /tmp.
    os.environ["CACHE_DIR"] = str(Path(worker_cache_root) / str(os.getpid()))
    import boto3

    from .handlers import load_function
    from .lambda_async import AsyncInvoker

    handler = load_function("classify_upload").lambda_handler

    def counting_handler(event: dict[str, Any], context: Any) -> Any:
        result = handler(event, context)
        for status, count in result["outcomes"].items():
            _outcomes[status] = _outcomes.get(status, 0) + count
        return result

    _invoker = AsyncInvoker(
        counting_handler, boto3.client("sqs"), dead_letter_queue_url, max_retry_attempts=retries
    )


def _invoke(event: dict[str, Any]) -> tuple[bool, int, dict[str, int]]:
    _outcomes.clear()
    ok = _invoker.invoke(event)
    return ok, _invoker.attempts[-1], dict(_outcomes)


def worker_pool(
    workers: int, env: dict[str, str], dead_letter_queue_url: str, retries: int, cache_root: str
) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init,
        initargs=(env, dead_letter_queue_url, retries, cache_root),
    )


def invoke(event: dict[str, Any]) -> tuple[bool, int, dict[str, int]]:
    """Run in a worker: (delivered without dead-lettering, attempts, outcome counts)."""
    return _invoke(event)
