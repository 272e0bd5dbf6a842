from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clip_local.stack import LocalStack


@pytest.fixture(autouse=True)
def _isolated_env() -> Iterator[None]:
    """Integration tests run against a module-scoped local stack that owns the AWS environment."""
    yield


@pytest.fixture(scope="module")
def outputs(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's stack outputs as ``clip-classifier --local --outputs`` reads them (``stack``: the
    module's own local stack fixture)."""
    path = tmp_path_factory.mktemp("local") / "outputs.json"
    path.write_text(json.dumps(stack.outputs()))
    return path
