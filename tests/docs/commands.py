"""The commands the README and docs/ show, and how each is proven to work as written.

Every command in a ```bash block belongs to exactly one rule below. A rule either runs the command (here, or
in a named test whose source holds the command's text), or says why it cannot run offline (AWS, the
Hugging Face hub, Docker, a long benchmark) — and then the command is still checked against what it calls:
the script or module exists and defines every ``--flag`` used, the ``make`` target exists, the AWS CLI
operation and its parameters exist in botocore's service model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from clip_local.paths import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Command:
    page: str
    text: str

    @property
    def words(self) -> str:
        """The command without its trailing comment, whitespace folded (continuations joined)."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
        return re.sub(r"\s+#\s.*$", "", joined).strip()


@dataclass(frozen=True)
class Rule:
    pattern: str
    #: "here": run by tests/docs/test_commands.py; "test": run as written by ``where``; anything else is the
    #: reason it is not run offline.
    kind: str
    where: str = ""


def documented_commands() -> list[Command]:
    commands = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            current = ""
            for line in block.splitlines():
                current = f"{current}\n{line}" if current else line
                if line.rstrip().endswith("\\"):
                    continue
                text, current = current.strip(), ""
                if text and not text.startswith("#"):
                    commands.append(Command(page.relative_to(REPO_ROOT).as_posix(), text))
    return commands


EXPORT_TEST = "tests/export/test_doc_commands.py"
LOCAL_TEST = "tests/integration/test_doc_commands.py"

RULES = [
    # --- run here, offline, as written
    Rule(r"^python -m clip_local\.(openapi|events)$", "here"),
    Rule(r"^python -m bench\.import_time$", "here"),
    Rule(r"^python -m clip_classifier\.jobs\.redrive --queue-url <", "aws"),
    # --- run as written by another test
    Rule(r"^curl -s -H 'x-api-key: local-dev-key'", "test", LOCAL_TEST),
    Rule(r"^make local ARGS=\"(backfill --copies 10|rescore) --once\"$", "test", LOCAL_TEST),
    Rule(
        r"^python -m clip_local\.heads --seed \d( --nudge-of /tmp/first\.json)? --out /tmp/",
        "test",
        LOCAL_TEST,
    ),
    Rule(r"^clip-classifier --local heads ", "test", LOCAL_TEST),
    Rule(r"^clip-classifier classify tests/fixtures/images ", "test", LOCAL_TEST),
    Rule(r"^python -m bench\.bench_digits --write-folders /tmp/digits$", "test", EXPORT_TEST),
    Rule(r"^python weights/train_head\.py --images /tmp/digits ", "test", EXPORT_TEST),
    Rule(r"^make local ARGS=\"--weights /tmp/digits-head\.json", "test", EXPORT_TEST),
    Rule(
        r"^python weights/export_clip_onnx\.py --random-init --config tiny --seed 0 --out /tmp/tiny-clip --text$",
        "test",
        EXPORT_TEST,
    ),
    Rule(r"^python weights/zero_shot_head\.py .* --model-dir /tmp/tiny-clip/int8 ", "test", EXPORT_TEST),
    Rule(
        r"^python weights/export_mlp_weights\.py --random-init --seed 0 --classes weights/example/classes\.txt",
        "test",
        "tests/export/test_export_mlp.py",
    ),
    Rule(r"^python tests/fixtures/make_web_golden\.py$", "test", "tests/unit/test_web_golden.py"),
    Rule(r"^python tests/fixtures/make_images\.py$", "test", "tests/unit/image/test_preprocess.py"),
    Rule(r"^make (test|lint|test-export|lambda-wheels)$", "test", ".ci/run"),
    Rule(r"^bash \.ci/run$", "is CI itself"),
    Rule(r"^\(cd web && npm test\)$", "test", "Makefile"),
    # --- cannot run offline: why, and what is checked instead (see test_commands.py)
    Rule(r"^make local$", "serves until Ctrl-C (tests/integration/test_local_main.py runs it with --once)"),
    Rule(r"^make local ARGS=\"--weights head\.json", "needs your head.json and the real model"),
    Rule(r"^make model$|--model-id openai/clip-vit-base-patch32", "needs the Hugging Face hub"),
    Rule(
        r"^\.venv/bin/pip install torch==2\.13\.0 --index-url https://download\.pytorch\.org",
        "needs PyTorch's index",
    ),
    Rule(
        r"^\.venv/bin/pip install -e '\.\[", "installs extras from PyPI (CI installs them: make test-export)"
    ),
    Rule(r"^make lock$", "recompiles the locks from PyPI (CI checks they resolve: make lambda-wheels)"),
    Rule(
        r"^python weights/export_clip_onnx\.py --random-init --config vit-b-32",
        "a 350 MB export (bench/bench_pipeline.py makes it)",
    ),
    Rule(r"^python weights/export_mlp_weights\.py --checkpoint head\.pt", "needs your PyTorch checkpoint"),
    Rule(
        r"^python weights/(train_head|zero_shot_head)\.py .*--model-dir weights/models/vit-b-32",
        "needs the real model (make model)",
    ),
    Rule(
        r"^python (bench/|-m bench\.)(bench_head|bench_pipeline|bench_digits|bench_train|decode_limits|load_uploads|batch_jobs|cost_model|bench_browser|bench_evaluate)(\.py)?( |$)(?!--write-folders)",
        "a benchmark; its own test runs it small (tests/unit/benchmarks, tests/export)",
    ),
    Rule(r"^(sam |aws |STACK=|MODELS=|API=|KEY=|export AWS_|output\(\) )", "needs an AWS account"),
    Rule(
        r"^LAMBDA_ARCH=arm64 sam build ",
        "needs Docker for the image (tests/unit/test_architectures.py runs the layer's build for arm64)",
    ),
    Rule(r"^clip-classifier --stack ", "needs an AWS account (the same commands run with --local in tests)"),
    Rule(r"^curl -s -H \"x-api-key: \$KEY\"", "needs an AWS account"),
    Rule(r"^python -c \"import boto3, sys; b = boto3\.resource\('s3'\)", "needs an AWS account"),
]


def rule_for(command: Command) -> list[Rule]:
    return [rule for rule in RULES if re.search(rule.pattern, command.words)]


def script_of(words: str) -> Path | None:
    """The file a ``python`` command runs: ``python path.py`` or ``python -m package.module``."""
    match = re.match(r"^python (?:-m ([\w.]+)|([\w/.-]+\.py))", words)
    if not match:
        return None
    if match.group(2):
        return REPO_ROOT / match.group(2)
    module = match.group(1)
    for root in (REPO_ROOT, REPO_ROOT / "layers" / "shared", REPO_ROOT / "local", REPO_ROOT / "weights"):
        base = root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__main__.py"):
            if candidate.is_file():
                return candidate
    return REPO_ROOT / "missing" / f"{module}.py"


def documented(where: str) -> list[Command]:
    """The commands whose rule says ``where`` runs them, in the order the pages show them."""
    return [
        c for c in documented_commands() if any(r.kind == "test" and r.where == where for r in rule_for(c))
    ]


def shell_env() -> dict[str, str]:
    """The environment a reader has after ``. .venv/bin/activate``: ``python`` is the project's."""
    import os
    import sys

    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
