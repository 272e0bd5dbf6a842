"""arm64 beside x86_64: one template parameter sets every function and the layer, the layer's makefile build
takes the matching wheels, both platforms' wheels are fetched with their hashes, the image has no
architecture of its own. (CI's ``make lambda-wheels`` downloads both platforms' wheels against the locks.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clip_local.paths import REPO_ROOT
from clip_local.template import load_template

FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}


def test_one_parameter_sets_every_function_and_the_layer() -> None:
    template = load_template()
    parameter = template["Parameters"]["Architecture"]
    assert parameter["Default"] == "x86_64" and parameter["AllowedValues"] == ["x86_64", "arm64"]
    assert template["Globals"]["Function"]["Architectures"] == [{"Ref": "Architecture"}]
    for name, resource in template["Resources"].items():
        if resource["Type"] in FUNCTION_TYPES:
            # No function overrides the global with an architecture of its own.
            assert "Architectures" not in resource.get("Properties", {}), name
    layer = template["Resources"]["SharedLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]


def make_dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.parametrize(
    ("arch", "wheels"), [("x86_64", "x86_64"), ("arm64", "aarch64"), ("aarch64", "aarch64")]
)
def test_the_layer_build_takes_the_wheels_of_its_architecture(tmp_path: Path, arch: str, wheels: str) -> None:
    run = make_dry_run(
        "-f",
        "layers/shared/Makefile",
        "build-SharedLayer",
        f"ARTIFACTS_DIR={tmp_path}",
        f"LAMBDA_ARCH={arch}",
    )
    assert run.returncode == 0, run.stderr
    assert f"--platform manylinux_2_28_{wheels}" in run.stdout and "--require-hashes" in run.stdout
    other = "x86_64" if wheels == "aarch64" else "aarch64"
    assert other not in run.stdout


def test_the_layer_build_defaults_to_x86_64_and_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    default = make_dry_run("-f", "layers/shared/Makefile", "build-SharedLayer", f"ARTIFACTS_DIR={tmp_path}")
    assert "manylinux_2_28_x86_64" in default.stdout
    wrong = make_dry_run(
        "-f", "layers/shared/Makefile", "build-SharedLayer", f"ARTIFACTS_DIR={tmp_path}", "LAMBDA_ARCH=sparc"
    )
    assert wrong.returncode != 0 and "LAMBDA_ARCH is sparc: x86_64 or arm64" in wrong.stderr


def test_lambda_wheels_fetches_both_platforms_against_the_hashed_locks() -> None:
    run = make_dry_run("-W", "pyproject.toml", "--always-make", "lambda-wheels", "VENV=.venv")
    assert run.returncode == 0, run.stderr
    for wheels in ("x86_64", "aarch64"):
        assert f"-d .lambda-wheels/image-{wheels}" in run.stdout
        assert f"LAMBDA_ARCH={wheels}" in run.stdout
    assert run.stdout.count("--require-hashes") >= 2
    for lock in ("layers/shared/requirements.txt", "functions/classify_upload/requirements.txt"):
        header = (REPO_ROOT / lock).read_text().splitlines()[1]
        assert "--universal" in header and "--python-platform" not in header, lock


def test_the_image_builds_for_either_architecture() -> None:
    dockerfile = (REPO_ROOT / "functions" / "classify_upload" / "Dockerfile").read_text()
    # The base image is multi-architecture and pip picks the wheels of the platform it builds on.
    assert "FROM public.ecr.aws/lambda/python:3.12\n" in dockerfile
    for pinned in ("x86_64", "amd64", "aarch64", "--platform"):
        assert pinned not in dockerfile
