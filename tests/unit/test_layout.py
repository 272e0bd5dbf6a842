"""The shared package's shape: sub-packages by stage of the pipeline, imports that point one way.

Each module belongs to a group (its sub-package, or a top-level module); a group may import only the groups
listed for it below, and the listing has no cycle. Type-only imports count too: a type that points up is a
dependency that points up. And the compute stages (image, model, head) never reach boto3, at any depth.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.unit.test_packaging import PACKAGE, fake_package, third_party_imports

COMPUTE = {"image", "model", "head"}
#: Which groups each group may import (besides itself). Lower stages first.
ALLOWED: dict[str, set[str]] = {
    "exceptions": set(),
    "limits": set(),
    "arrays": set(),
    "camel": set(),
    "image": {"exceptions", "arrays"},
    "model": {"exceptions", "arrays", "image"},
    "head": {"exceptions", "arrays", "limits", "camel"},
    "aws": {"exceptions"},
    "ingest": {"exceptions", "aws"},
    "registry": {"exceptions", "arrays", "camel", "head"},
    "storage": {"exceptions", "aws", "arrays", "limits", "camel", "head", "registry"},
    #: What the stack announces (EventBridge): messages about stored results, and the bus adapter.
    "events": {"exceptions", "aws", "camel", "head", "storage"},
    "ports": {"head", "ingest", "storage", "events"},
    "api": {"exceptions", "arrays", "limits", "camel", "head", "model", "storage", "ports", "events"},
    "jobs": {
        "exceptions",
        "arrays",
        "aws",
        "image",
        "model",
        "head",
        "ingest",
        "storage",
        "ports",
        "registry",
        "events",
    },
    "invocation": {"exceptions"},
    "settings": {"exceptions", "limits", "image"},
    "wiring": {
        "aws",
        "settings",
        "api",
        "jobs",
        "image",
        "model",
        "head",
        "ingest",
        "storage",
        "registry",
        "events",
    },
    #: The operator's command line: on top of everything, imported by nothing.
    "cli": {"exceptions", "aws", "head", "image", "model", "registry", "storage", "events", "ports", "api"},
}


def group_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def package_imports(path: Path, root: Path) -> set[str]:
    """Every module of the package a file names, wherever the import is (functions, TYPE_CHECKING)."""
    names: set[str] = set()
    own = [root.name, *path.parent.relative_to(root).parts]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = own[: len(own) - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            if module == root.name:  # from clip_classifier import settings: the member is the module
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == root.name and n != root.name}


def violations(root: Path, allowed: dict[str, set[str]]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        group = group_of(path, root)
        if group not in allowed:
            found.append(f"{path.relative_to(root)}: group {group!r} has no place in the layout")
            continue
        for name in sorted(package_imports(path, root)):
            target = name.split(".")[1]
            if target != group and target in allowed and target not in allowed[group]:
                found.append(f"{path.relative_to(root)} ({group}) imports {name} ({target})")
    return found


def test_imports_point_one_way() -> None:
    assert violations(PACKAGE, ALLOWED) == []


def test_the_layout_is_a_hierarchy_without_cycles() -> None:
    order = list(TopologicalSorter(ALLOWED).static_order())
    assert set(order) == set(ALLOWED)
    groups = {group_of(p, PACKAGE) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert groups == set(ALLOWED), "every module has a place in the layout, and every place is used"


def test_sub_packages_have_empty_inits() -> None:
    """An import of one module never loads its siblings (the zip function must not load Pillow or
    onnxruntime because a sub-package's __init__ pulled them in)."""
    inits = [p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert {p.parent.name for p in inits} == {
        "api", "cli", "events", "head", "image", "ingest", "jobs", "model", "registry", "storage"
    }  # fmt: skip
    assert all(p.read_text().strip() == "" for p in inits)


@pytest.mark.parametrize("stage", sorted(COMPUTE))
def test_the_compute_stages_never_reach_the_sdk(stage: str) -> None:
    for path in sorted((PACKAGE / stage).glob("*.py")):
        needs, unresolved = third_party_imports(path)
        assert unresolved == []
        assert not {"boto3", "botocore"} & needs.keys(), f"{path.name} reaches the SDK: {needs}"


def test_an_upward_import_is_reported(tmp_path: Path) -> None:
    """The check can fail: a head module that imports the API, and the image stage that reaches storage."""
    root = fake_package(
        tmp_path,
        {
            "__init__.py": "",
            "head/__init__.py": "",
            "head/forward.py": "from clip_classifier.api.models import X\n",
            "image/__init__.py": "",
            "image/decode.py": "def f() -> None:\n    from ..storage import item\n",
        },
    )
    assert violations(root, ALLOWED) == [
        "head/forward.py (head) imports clip_classifier.api.models (api)",
        "image/decode.py (image) imports clip_classifier.storage (storage)",
    ]
    with pytest.raises(CycleError):
        list(TopologicalSorter({**ALLOWED, "head": ALLOWED["head"] | {"api"}}).static_order())
