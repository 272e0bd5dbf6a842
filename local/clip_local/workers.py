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


# --- functions a state machine invokes synchronously (backfill batches, rescore segments) ---------------

#: folder under functions/ → (builder, settings class) names, imported in the worker.
_SYNC_FUNCTIONS = {
    "backfill_batch": ("build_backfill_function", "UploadSettings"),
    "rescore_results": ("build_rescore_function", "RescoreSettings"),
    "evaluate_heads": ("build_evaluate_function", "EvaluateSettings"),
}
_sync_handler: Any = None
_sync_timeout = 300.0


def _init_sync(
    name: str, env: dict[str, str], endpoint: str, cache_root: str, timeout: float, quiet: bool
) -> None:
    global _sync_handler, _sync_timeout
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    import os

    if quiet:
        # Powertools' handler holds the real stdout; its level is read when the handler module is imported.
        os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"

    from clip_classifier import settings as settings_module
    from clip_classifier import wiring

    from .handlers import load_function
    from .moto_server import LocalAws

    builder_name, settings_name = _SYNC_FUNCTIONS[name]
    settings = settings_module.load_settings(
        getattr(settings_module, settings_name),
        {**env, "CACHE_DIR": str(Path(cache_root) / str(os.getpid()))},
    )
    function = getattr(wiring, builder_name)(settings, LocalAws(endpoint).clients())
    _sync_handler = load_function(name).create_handler(function)
    _sync_timeout = timeout


def invoke_sync(payload: Any) -> tuple[bool, Any]:
    """Run in a worker: (True, the function's result) or (False, Lambda's error payload for what it raised)."""
    from .apigw import LambdaContext

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return True, _sync_handler(payload, LambdaContext(_sync_timeout))
    except Exception as exc:  # noqa: BLE001 - Lambda reports whatever the handler raises as errorType/errorMessage
        return False, {"errorType": type(exc).__name__, "errorMessage": str(exc)}


def sync_pool(
    name: str,
    workers: int,
    env: dict[str, str],
    endpoint: str,
    cache_root: str,
    timeout: float,
    *,
    quiet: bool = True,
) -> ProcessPoolExecutor:
    """``workers`` execution environments of ``functions/<name>``, each built once in its own process."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_sync,
        initargs=(name, env, endpoint, cache_root, timeout, quiet),
    )
