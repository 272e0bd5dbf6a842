"""The README's main command: ``python -m clip_local`` classifies a folder on the local stack and prints
the table (``make local`` runs exactly this, without ``--once``)."""

from __future__ import annotations

import re
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
    # The reviewers' page, told where to sign in, and a reviewer made for this run (a password of the
    # template's policy: 12+ characters with upper, lower and digits).
    review = re.search(r"review page: (http://127\.0\.0\.1:\d+/review/\?client=\w+&cognito=http://\S+)", out)
    login = re.search(r"sign in as reviewer@example\.com / (\S+)", out)
    assert review and login, out
    assert len(login[1]) >= 12 and re.search("[A-Z]", login[1]) and re.search("[0-9]", login[1])
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


def run_local(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m clip_local`` in its own process group, which must be empty once it has exited."""
    import os
    import signal

    process = subprocess.Popen(
        [sys.executable, "-m", "clip_local", "--once", *args],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        pass  # nothing left behind
    else:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("python -m clip_local left a process behind")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_a_taken_port_is_one_line_naming_it_and_its_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option, what in (("--moto-port", "the moto server"), ("--port", "the API")):
            other = "--port" if option == "--moto-port" else "--moto-port"
            result = run_local(option, str(port), other, str(free_port()))
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert result.stderr.strip().splitlines() == [
                f"python -m clip_local: port {port} ({what}, {option}) is already in use: stop what uses it, "
                f'or choose another, e.g. make local ARGS="{option} {port + 1}"'
            ]


def test_a_missing_folder_or_model_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ports = ("--port", str(free_port()), "--moto-port", str(free_port()))
    missing = run_local("--images", str(tmp_path / "absent"), *ports)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"python -m clip_local: --images {tmp_path / 'absent'}: no such folder"
    no_model = run_local("--model-dir", str(tmp_path / "vit-b-32" / "int8"), *ports)
    assert no_model.returncode == 1 and "Traceback" not in no_model.stderr
    assert "no model.onnx and manifest.json there (export one with 'make model')" in no_model.stderr


def test_a_port_left_in_time_wait_by_a_previous_run_is_free() -> None:
    """What failed CI: a previous run's server closed its connections first, so its port sat in TIME_WAIT,
    and the start-up probe (a bind without SO_REUSEADDR) called it taken although a server can listen."""
    from clip_local.__main__ import port_in_use

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert port_in_use(port)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: this end of the connection enters TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    with socket.socket() as plain:  # the old probe: refused while the connection waits
        try:
            plain.bind(("127.0.0.1", port))
            in_time_wait = False
        except OSError:
            in_time_wait = True
    assert in_time_wait, "the set-up did not leave the port in TIME_WAIT"
    assert not port_in_use(port)
