"""Where the repository's pieces are (this package is only ever used from a checkout)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
EVENTS_DIR = REPO_ROOT / "infra" / "events"
FUNCTIONS_DIR = REPO_ROOT / "functions"
EXAMPLE_WEIGHTS = REPO_ROOT / "weights" / "example" / "example_head.json"
TINY_MODEL_DIR = REPO_ROOT / "weights" / "models" / "tiny"
