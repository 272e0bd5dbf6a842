"""Every command the README and docs/ show works as written: each belongs to exactly one rule of
``tests/docs/commands.py``, is run offline where the product can be (here or by the test the rule names),
and is checked against what it calls where it cannot (scripts and their flags, make targets, AWS CLI
operations). Links and the repository paths the pages name must exist too."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import botocore.session
import pytest

from clip_local.paths import REPO_ROOT
from tests.docs.commands import PAGES, RULES, Command, Rule, documented_commands, rule_for, script_of

COMMANDS = documented_commands()
IDS = [f"{c.page}:{c.words[:60]}" for c in COMMANDS]


def test_the_pages_show_commands() -> None:
    assert len(COMMANDS) > 50 and {c.page for c in COMMANDS} >= {
        "README.md",
        "docs/deploy.md",
        "docs/heads.md",
    }


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_each_command_has_exactly_one_rule(command: Command) -> None:
    rules = rule_for(command)
    assert len(rules) == 1, f"{command.page}: {command.words!r} matches {[r.pattern for r in rules]}"


def test_every_rule_is_used() -> None:
    used = {rule.pattern for command in COMMANDS for rule in rule_for(command)}
    assert [r.pattern for r in RULES if r.pattern not in used] == []


def flags(words: str) -> list[str]:
    return re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", words)


@pytest.mark.parametrize("command", [c for c in COMMANDS if script_of(c.words)], ids=lambda c: c.words[:60])
def test_scripts_exist_and_define_every_flag_used(command: Command) -> None:
    script = script_of(command.words)
    assert script is not None and script.is_file(), f"{command.words!r}: no {script}"
    source = script.read_text(encoding="utf-8")
    for flag in flags(command.words.split(" python ")[0]):
        assert f'"{flag}"' in source, f"{script.name} defines no {flag} ({command.page})"


MAKEFILE = (REPO_ROOT / "Makefile").read_text()
LOCAL_MAIN = (REPO_ROOT / "local" / "clip_local" / "__main__.py").read_text()


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c.words.startswith("make ")], ids=lambda c: c.words
)
def test_make_targets_exist_and_local_arguments_are_defined(command: Command) -> None:
    target = command.words.split()[1]
    assert re.search(rf"^{re.escape(target)}:", MAKEFILE, re.M), f"no make target {target}"
    arguments = re.search(r'ARGS="([^"]*)"', command.words)
    for flag in flags(arguments.group(1) if arguments else ""):
        assert f'"{flag}"' in LOCAL_MAIN, f"python -m clip_local defines no {flag}"


#: High-level AWS CLI commands (customisations with no service model) the pages use.
AWS_CUSTOM = {("s3", "cp"), ("configure", ""), ("sso", "login")}
AWS_GLOBAL = {"--query", "--output", "--region", "--profile"}


@cache
def aws_model(service: str) -> object:
    return botocore.session.get_session().get_service_model("s3" if service == "s3api" else service)


@pytest.mark.parametrize(
    "command",
    [c for c in COMMANDS if re.search(r"(^|\$\(|KEY=\$\()aws ", c.words)],
    ids=lambda c: c.words[:60],
)
def test_aws_cli_operations_and_parameters_exist(command: Command) -> None:
    """Each ``aws SERVICE OPERATION --param`` names an operation and parameters of botocore's model."""
    for service, operation, rest in re.findall(
        r"aws ([a-z0-9][a-z0-9-]*) ?([a-z-]*)((?: --?[\w-]+(?: [^\s-][^\s]*)?)*)", command.words
    ):
        if (service, operation) in AWS_CUSTOM or (service, "") in AWS_CUSTOM:
            continue
        model = aws_model(service)
        names = {n.lower(): n for n in model.operation_names}  # type: ignore[attr-defined]
        name = operation.replace("-", "")
        assert name in names, f"aws {service} {operation}: no such operation"
        members = {m.lower() for m in model.operation_model(names[name]).input_shape.members}  # type: ignore[attr-defined]
        for flag in flags(rest):
            if flag not in AWS_GLOBAL:
                assert flag[2:].replace("-", "") in members, f"aws {service} {operation} takes no {flag}"


@pytest.mark.parametrize("rule", [r for r in RULES if r.kind == "test"], ids=lambda r: r.where)
def test_the_tests_that_run_commands_exist_and_name_them(rule: Rule) -> None:
    where = REPO_ROOT / rule.where
    assert where.is_file()
    text = where.read_text(encoding="utf-8")
    examples = [c for c in COMMANDS if any(r is rule for r in rule_for(c))]
    for command in examples:
        script = script_of(command.words)
        key = script.stem if script else command.words.split()[1 if command.words.startswith("make") else 0]
        assert key.strip("()") in text or "documented(" in text, (
            f"{rule.where} does not run {command.words!r}"
        )


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if any(r.kind == "here" for r in rule_for(c))], ids=lambda c: c.words
)
def test_the_offline_commands_run_here(command: Command) -> None:
    """Run as written; the generators among them rewrite committed files, which must come out unchanged."""
    before = {p: p.read_bytes() for p in (REPO_ROOT / "infra").rglob("*") if p.is_file()}
    words = command.words.split()
    result = subprocess.run(
        [sys.executable, *words[1:]], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    after = {p: p.read_bytes() for p in (REPO_ROOT / "infra").rglob("*") if p.is_file()}
    assert after == before, "a generator changed a committed file: commit its output"


LINK = re.compile(r"\]\(([^)#\s]+)?(?:#([\w-]+))?\)")
#: Paths the pages name that the product makes (make model, the benchmarks), not the repository.
MADE = ("weights/models/vit-b-32", "bench/.cache")
PATH = re.compile(r"`((?:tests|weights|bench|infra|functions|local|web|layers|docs)/[\w./*-]+)`")


def slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_named_paths_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target, anchor in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        linked = (page.parent / target).resolve() if target else page
        assert linked.exists(), f"{page.name}: broken link {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: no heading #{anchor} in {target}"
    for path in PATH.findall(text):
        path = path.rstrip(".")
        if path.startswith(MADE):
            continue
        found = list(REPO_ROOT.glob(path)) if "*" in path else [REPO_ROOT / path]
        assert found and all(p.exists() for p in found), f"{page.name} names {path}, which does not exist"
