"""Where the repository's pieces are (this package is only ever used from a checkout)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
EVENTS_DIR = REPO_ROOT / "infra" / "events"
OPENAPI_DOCUMENT = REPO_ROOT / "infra" / "openapi.json"
#: The reviewers' routes (Cognito ID token, not the API key).
REVIEW_OPENAPI_DOCUMENT = REPO_ROOT / "infra" / "openapi-review.json"
FUNCTIONS_DIR = REPO_ROOT / "functions"
EXAMPLE_WEIGHTS = REPO_ROOT / "weights" / "example" / "example_head.json"
TINY_MODEL_DIR = REPO_ROOT / "weights" / "models" / "tiny"
#: The browser client (its page, module and, once ``npm ci`` ran there, onnxruntime-web).
WEB_DIR = REPO_ROOT / "web"
#: Where ``make model`` exports openai/clip-vit-base-patch32 (and where ``sam build`` takes the model from).
VIT_B_32_DIR = REPO_ROOT / "weights" / "models" / "vit-b-32"


def default_model_dir() -> Path:
    """The real ViT-B/32 once ``make model`` has exported it, else the tiny random test model."""
    real = VIT_B_32_DIR / "int8"
    return real if (real / "model.onnx").is_file() else TINY_MODEL_DIR / "int8"


def initial_head(model_dir: Path) -> Path:
    """The head the local stack serves first: the zero-shot head of the 12 default classes that
    ``make model`` builds beside the model it exported (``<model>/../zero_shot_head.json``), else the
    random example head (the only head for the tiny test model)."""
    zero_shot = model_dir.parent / "zero_shot_head.json"
    return zero_shot if zero_shot.is_file() else EXAMPLE_WEIGHTS
