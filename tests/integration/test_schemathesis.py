"""schemathesis fuzzes the local API from the committed OpenAPI document: no 5xx, documented statuses,
responses that match their schemas, schema-violating bodies rejected (infra/schemathesis.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from clip_local.paths import REPO_ROOT
from clip_local.stack import local_stack


def test_schemathesis_finds_nothing() -> None:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is part of the dev extra"
    with local_stack(api_key="fuzz-key") as stack:
        result = subprocess.run(
            [
                executable,
                "--config-file",
                str(REPO_ROOT / "infra" / "schemathesis.toml"),
                "run",
                str(REPO_ROOT / "infra" / "openapi.json"),
                "--url",
                f"{stack.api.url}/api",
                "-H",
                "x-api-key: fuzz-key",
                "-n",
                "60",
                "--seed",
                "7",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout
