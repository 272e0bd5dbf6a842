"""Several Lambda execution environments, emulated as worker processes.

Each worker builds the upload function itself (its own model, weights cache and boto3 clients, as a
separate Lambda instance has) from the function's environment variables, talks to the same moto server,
and applies Lambda's async retries and on-failure destination (``AsyncInvoker``). Used by the load script
and its test.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

_invoker: Any = None
_outcomes: dict[str, int] = {}


def _init(
    env: dict[str, str], endpoint: str, dead_letter_queue_url: str, retries: int, cache_root: str
) -> None:
    global _invoker
    # With no metrics to publish, Powertools warns at every cold start; the load script's table must stay clean.
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    import os

    from clip_classifier.settings import UploadSettings, load_settings
    from clip_classifier.wiring import build_upload_function

    from .handlers import load_function
    from .lambda_async import AsyncInvoker
    from .moto_server import LocalAws

    aws = LocalAws(endpoint)
    # Every execution environment has its own /tmp.
    settings = load_settings(UploadSettings, {**env, "CACHE_DIR": str(Path(cache_root) / str(os.getpid()))})
    handler = load_function("classify_upload").create_handler(build_upload_function(settings, aws.clients()))

    def counting_handler(event: dict[str, Any], context: Any) -> Any:
        # A worker's JSON logs and EMF lines would drown the load script's table.
        with contextlib.redirect_stdout(io.StringIO()):
            result = handler(event, context)
        for status, count in result["outcomes"].items():
            _outcomes[status] = _outcomes.get(status, 0) + count
        return result

    _invoker = AsyncInvoker(
        counting_handler, aws.client("sqs"), dead_letter_queue_url, max_retry_attempts=retries
    )


def invoke(event: dict[str, Any]) -> tuple[bool, int, dict[str, int]]:
    """Run in a worker: (delivered without dead-lettering, attempts, outcome counts)."""
    _outcomes.clear()
    ok = _invoker.invoke(event)
    return ok, _invoker.attempts[-1], dict(_outcomes)


def worker_pool(
    workers: int,
    env: dict[str, str],
    endpoint: str,
    dead_letter_queue_url: str,
    retries: int,
    cache_root: str,
) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init,
        initargs=(env, endpoint, dead_letter_queue_url, retries, cache_root),
    )
