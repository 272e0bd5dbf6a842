"""What each deployable ships can run, checked without Docker or ``sam build`` (neither runs here).

* The container image: every module its code imports, at any depth and inside functions too, comes from
  ``functions/classify_upload/requirements.txt`` (or what those install) — the image has nothing else.
* The zip function + layer: what it imports at load comes from ``layers/shared/requirements.txt`` or the
  runtime's boto3, and its own tests pass in a process where the image-only packages cannot be imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from clip_local.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "layers" / "shared" / "clip_classifier"
#: What the managed Python runtime provides to zip functions (the layer does not ship the SDK).
RUNTIME_PROVIDED = {"boto3"}


def requirement_names(path: Path) -> dict[str, Requirement]:
    """The pinned packages of a hashed lock file (``name==version \\`` lines, then ``--hash`` lines)."""
    lines = [line.strip().rstrip("\\").strip() for line in path.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith(("#", "--"))]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


@cache
def closure(distributions: frozenset[str]) -> frozenset[str]:
    """The distributions plus everything they install with them (their non-optional dependencies)."""
    seen: set[str] = set()
    todo = list(distributions)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or "extra" not in str(requirement.marker):
                todo.append(canonicalize_name(requirement.name))
    return frozenset(seen)


def module_file(name: str, root: Path = PACKAGE) -> Path | None:
    """The file of a dotted module of the package at ``root`` (``clip_classifier.storage.item_codec`` →
    ``.../storage/item_codec.py``, a sub-package → its ``__init__.py``), or ``None``."""
    base = root.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, *, lazy: bool, root: Path = PACKAGE) -> tuple[set[str], set[str]]:
    """What a file imports, as absolute dotted names: the modules it names (which must exist), and the
    names it takes from them (``from a.b import c``: ``a.b.c``, a module only if ``c`` is a sub-module).
    Relative imports are resolved against the file's own package. TYPE_CHECKING blocks never count; with
    ``lazy=False`` only what runs at import time (not inside functions)."""
    modules: set[str] = set()
    members: set[str] = set()
    package = root.name
    here = path.parent if path.is_relative_to(root) else None
    own = [package, *here.relative_to(root).parts] if here is not None else [package]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for statement in node.orelse:
                visit(statement)
            return
        if not lazy and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative to the importing file's package
                base = own[: len(own) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            modules.add(module)
            members.update(f"{module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return modules, members


def third_party_imports(
    entry: Path, *, lazy: bool = True, root: Path = PACKAGE
) -> tuple[dict[str, set[str]], list[str]]:
    """Top-level third-party modules reachable from ``entry`` → the files that import them, and the
    package's own imports that name no module of it (a broken import the walk cannot follow)."""
    pending, visited, needs = [entry], set(), dict[str, set[str]]()
    unresolved: list[str] = []
    package = root.name
    while pending:
        path = pending.pop()
        if path in visited:
            continue
        visited.add(path)
        where = path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name
        modules, members = imports_of(path, lazy=lazy, root=root)
        for name in modules:
            top = name.split(".")[0]
            if top == package:
                # Every package a dotted name passes through runs its __init__ too.
                for depth in range(1, name.count(".") + 2):
                    found = module_file(".".join(name.split(".")[:depth]), root)
                    if found is not None:
                        pending.append(found)
                if module_file(name, root) is None:
                    unresolved.append(f"{name} (imported by {where})")
            elif top not in sys.stdlib_module_names:
                needs.setdefault(top, set()).add(where)
        for name in members:
            found = module_file(name, root) if name.split(".")[0] == package else None
            if found is not None:
                pending.append(found)
    return needs, sorted(unresolved)


def missing(
    entry: Path, requirements: Path, provided: set[str], *, lazy: bool = True, root: Path = PACKAGE
) -> list[str]:
    shipped = closure(frozenset(requirement_names(requirements)) | frozenset(provided))
    distributions = packages_distributions()
    needs, unresolved = third_party_imports(entry, lazy=lazy, root=root)
    problems = [f"no such module: {name}" for name in unresolved]
    for module, importers in sorted(needs.items()):
        owners = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not owners & shipped:
            problems.append(f"{module} (imported by {', '.join(sorted(importers))})")
    return problems


def test_the_container_image_requirements_cover_every_import() -> None:
    app = REPO_ROOT / "functions" / "classify_upload" / "app.py"
    # The image gets no SDK from anywhere but its own requirements.
    assert missing(app, app.with_name("requirements.txt"), set()) == []


ZIP_FUNCTIONS = {
    "score_features": "ScoreFeaturesFunction",
    "rescore_results": "RescoreResultsFunction",
    "evaluate_heads": "EvaluateHeadsFunction",
    "review_labels": "ReviewLabelsFunction",
}


@pytest.mark.parametrize("folder", sorted(ZIP_FUNCTIONS))
def test_the_layer_requirements_cover_what_the_zip_function_imports_at_load(folder: str) -> None:
    app = REPO_ROOT / "functions" / folder / "app.py"
    assert (
        missing(app, REPO_ROOT / "layers" / "shared" / "requirements.txt", RUNTIME_PROVIDED, lazy=False) == []
    )


# Imports inside functions are only found by running them: the scoring function's own tests, in a
# process where the image-only packages cannot be imported, as in the deployed zip function + layer.
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"PIL", "onnxruntime", "pi_heif", "torch", "transformers"}:
            raise ImportError(f"{name} is not in the layer")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize(
    "tests",
    [
        "tests/unit/functions/test_score_features.py",
        "tests/unit/functions/test_evaluate_heads.py",
        "tests/unit/functions/test_review_labels.py",
    ],
)
def test_the_zip_functions_run_without_the_image_only_packages(tests: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER + "import pytest\nsys.exit(pytest.main([sys.argv[1], '-q', '-p', 'no:cacheprovider']))",
            tests,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_the_blocker_blocks() -> None:
    """The test above can fail: an image-only module under the same blocker does not import."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + "import clip_classifier.image.preprocess"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0 and "is not in the layer" in result.stderr


def fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package named ``clip_classifier`` under ``tmp_path`` with the given files (relative paths)."""
    root = tmp_path / "clip_classifier"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_walk_follows_dotted_and_relative_imports_into_sub_packages(tmp_path: Path) -> None:
    """An undeclared package imported three levels down, through a dotted import, a relative import and a
    ``from package import module``, is found and named with the file that imports it."""
    root = fake_package(
        tmp_path,
        {
            "__init__.py": "",
            "api/__init__.py": "",
            "api/entry.py": "from clip_classifier.storage import codec\n",
            "storage/__init__.py": "",
            "storage/codec.py": "from .deep.reader import read\n",
            "storage/deep/__init__.py": "",
            "storage/deep/reader.py": "import pi_heif\n\ndef read() -> None: ...\n",
        },
    )
    lock = tmp_path / "requirements.txt"
    lock.write_text("numpy==2.0.0\n")
    assert missing(root / "api" / "entry.py", lock, set(), root=root) == ["pi_heif (imported by reader.py)"]


def test_an_import_the_walk_cannot_resolve_fails(tmp_path: Path) -> None:
    """A ``clip_classifier.*`` import that names no module fails the check instead of ending the walk."""
    root = fake_package(
        tmp_path,
        {"__init__.py": "", "jobs/__init__.py": "", "jobs/run.py": "from clip_classifier.gone import x\n"},
    )
    lock = tmp_path / "requirements.txt"
    lock.write_text("")
    assert missing(root / "jobs" / "run.py", lock, set(), root=root) == [
        "no such module: clip_classifier.gone (imported by run.py)"
    ]


def test_a_missing_requirement_is_reported(tmp_path: Path) -> None:
    """The check above can fail: drop a requirement and it names the import and who imports it."""
    full = REPO_ROOT / "functions" / "classify_upload" / "requirements.txt"
    reduced = tmp_path / "requirements.txt"
    reduced.write_text("\n".join(line for line in full.read_text().splitlines() if "pi-heif" not in line))
    problems = missing(REPO_ROOT / "functions" / "classify_upload" / "app.py", reduced, set())
    assert problems == ["pi_heif (imported by layers/shared/clip_classifier/image/preprocess.py)"]


@pytest.mark.parametrize(
    ("lock", "groups", "left_out"),
    [
        ("layers/shared/requirements.txt", ["dependencies"], RUNTIME_PROVIDED),
        ("functions/classify_upload/requirements.txt", ["dependencies", "image"], set()),
    ],
)
def test_each_lock_pins_what_pyproject_declares_with_hashes(
    lock: str, groups: list[str], left_out: set[str]
) -> None:
    """pyproject.toml is the one source; the lock (``make lock``) pins every declared package to a version
    its range allows, and every pin carries hashes, so pip installs it with --require-hashes."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared: list[str] = []
    for group in groups:
        declared += (
            project["dependencies"] if group == "dependencies" else project["optional-dependencies"][group]
        )
    pins = requirement_names(REPO_ROOT / lock)
    for requirement in map(Requirement, declared):
        name = canonicalize_name(requirement.name)
        if name in left_out:
            assert name not in pins, f"{lock} ships {name}, which the runtime provides"
            continue
        assert name in pins, f"{lock} does not pin {name}: run 'make lock'"
        (pin,) = pins[name].specifier
        assert pin.operator == "==" and requirement.specifier.contains(pin.version), (lock, str(pins[name]))
    text = (REPO_ROOT / lock).read_text()
    assert text.count("==") == len(pins) and text.count("--hash=sha256:") >= len(pins)
    assert "torch" not in pins


#: The zip functions that read the embedder's manifest (the review function never scores: it has none).
SCORING_ZIP_FUNCTIONS = sorted(set(ZIP_FUNCTIONS) - {"review_labels"})


def test_sam_build_of_the_review_function_ships_its_handler_alone(tmp_path: Path) -> None:
    from clip_local.template import function_environment, load_template

    subprocess.run(
        ["make", "-s", "-f", str(REPO_ROOT / "functions" / "review_labels" / "Makefile"),
         "build-ReviewLabelsFunction", f"ARTIFACTS_DIR={tmp_path}"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["app.py"]
    assert (tmp_path / "app.py").read_bytes() == (REPO_ROOT / "functions/review_labels/app.py").read_bytes()
    assert "EMBEDDER_MANIFEST" not in function_environment(load_template(), "ReviewLabelsFunction")


@pytest.mark.parametrize("folder", SCORING_ZIP_FUNCTIONS)
def test_sam_build_of_each_zip_function_ships_the_embedder_manifest(tmp_path: Path, folder: str) -> None:
    """functions/<name>/Makefile (BuildMethod makefile) run as ``sam build`` runs it: the artifact holds the
    handler and the model's manifest where the template's EMBEDDER_MANIFEST points."""
    from clip_local.template import function_environment, load_template

    model_dir = "weights/models/tiny/int8"
    logical_id = ZIP_FUNCTIONS[folder]
    makefile = str(REPO_ROOT / "functions" / folder / "Makefile")
    artifacts = tmp_path / logical_id
    artifacts.mkdir()
    subprocess.run(
        ["make", "-s", "-f", makefile, f"build-{logical_id}", f"ARTIFACTS_DIR={artifacts}", f"MODEL_DIR={model_dir}"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert (artifacts / "app.py").read_bytes() == (REPO_ROOT / "functions" / folder / "app.py").read_bytes()
    manifest = function_environment(load_template(), logical_id)["EMBEDDER_MANIFEST"]
    assert (artifacts / manifest).read_bytes() == (REPO_ROOT / model_dir / "manifest.json").read_bytes()
    missing = subprocess.run(
        ["make", "-s", "-f", makefile, f"build-{logical_id}", f"ARTIFACTS_DIR={artifacts}",
         "MODEL_DIR=weights/models/absent"],
        cwd=tmp_path, check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode != 0 and "run 'make model' first" in missing.stdout
