"""The README's main command: ``python -m clip_local`` classifies a folder on the local stack and prints
the table (``make local`` runs exactly this, without ``--once``)."""

from __future__ import annotations

import socket
import subprocess
import sys

from clip_local.paths import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_local_run_classifies_the_folder_and_prints_a_clean_table() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "clip_local",
            "--images",
            str(FIXTURES),
            "--once",
            "--port",
            str(free_port()),
            "--moto-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] and (FIXTURES / line.split()[0]).is_file()
    ]
    assert sorted(row[0] for row in rows) == sorted(p.name for p in FIXTURES.iterdir())
    assert all(row[1] == "classified" for row in rows), rows
    assert "dead-lettered events: 0" in out
    assert f"{len(rows)}/{len(rows)} done" in result.stderr  # the progress bar
    # Quiet by default: no JSON logs or EMF blobs around the progress bar and the table.
    for stream in (out, result.stderr):
        assert '"_aws"' not in stream and '"level"' not in stream


def local_job(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clip_local", *args, "--images", str(FIXTURES), "--once", "--workers", "2",
         "--port", str(free_port()), "--moto-port", str(free_port())],
        capture_output=True, text=True, check=False, timeout=300, cwd=REPO_ROOT,
    )  # fmt: skip


def test_local_backfill_and_rescore_run_the_state_machines_with_a_progress_bar_and_a_summary() -> None:
    fixtures = len([p for p in FIXTURES.iterdir() if p.is_file()])
    backfill = local_job("backfill", "--copies", "2")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert f"{2 * fixtures} objects put in s3://" in backfill.stdout
    assert "backfill: SUCCEEDED" in backfill.stdout and f"  classified {2 * fixtures}" in backfill.stdout
    assert f"{2 * fixtures} keys" in backfill.stderr  # the progress bar counts keys

    rescore = local_job("rescore")
    assert rescore.returncode == 0, rescore.stderr[-3000:]
    assert "rescore: SUCCEEDED" in rescore.stdout and f"  rescored {fixtures}" in rescore.stdout
    assert "16/16 16 segments" in rescore.stderr
    for stream in (backfill.stdout, backfill.stderr, rescore.stdout, rescore.stderr):
        assert '"_aws"' not in stream and '"level"' not in stream
