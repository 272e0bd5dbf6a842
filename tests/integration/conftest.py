from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _isolated_env() -> Iterator[None]:
    """Integration tests run against a module-scoped local stack that owns the AWS environment."""
    yield
