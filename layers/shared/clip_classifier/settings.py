"""The one place configuration is read.

``template.yaml`` Parameters/Globals become environment variables; :func:`load_settings` turns them into a
validated :class:`Settings`. An explicit keyword argument beats the environment, so tests and the local
stack pass what they need without touching ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .exceptions import ConfigurationError

# Environment variable for each field; the field name is the keyword argument.
ENV_NAMES: dict[str, str] = {
    "results_table": "RESULTS_TABLE",
    "weights_uri": "WEIGHTS_URI",
    "weights_refresh_seconds": "WEIGHTS_REFRESH_SECONDS",
    "cache_dir": "CACHE_DIR",
    "max_batch_items": "MAX_BATCH_ITEMS",
    "max_body_bytes": "MAX_BODY_BYTES",
    "model_path": "MODEL_PATH",
    "manifest_path": "MANIFEST_PATH",
    "max_image_bytes": "MAX_IMAGE_BYTES",
    "max_image_pixels": "MAX_IMAGE_PIXELS",
    "key_prefix": "KEY_PREFIX",
    "key_suffixes": "KEY_SUFFIXES",
    "preprocess_mode": "PREPROCESS_MODE",
    "intra_op_threads": "INTRA_OP_THREADS",
}


class Settings(BaseModel):
    """Validated configuration of both functions (each uses the part it needs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    results_table: str = Field(default="", description="DynamoDB table of classification results.")
    weights_uri: str = Field(default="", description="s3://bucket/key or a local path of the head weights.")
    weights_refresh_seconds: float = Field(default=300.0, ge=0)
    cache_dir: Path = Path("/tmp/clip-classifier")  # noqa: S108 - Lambda's only writable place
    max_batch_items: int = Field(default=100, ge=1, le=1000)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    model_path: Path = Path("model/model.onnx")
    manifest_path: Path | None = None
    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    key_prefix: str = ""
    key_suffixes: tuple[str, ...] = ()
    preprocess_mode: Literal["auto", "exact", "fast"] = "auto"
    intra_op_threads: int = Field(default=0, ge=0, description="0 = the CPUs this process may use.")

    @field_validator("key_suffixes", mode="before")
    @classmethod
    def _split_suffixes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(s.strip().lower() for s in value.split(",") if s.strip())
        return value

    def require(self, *names: str) -> None:
        """Fail clearly when a setting a function needs is empty."""
        missing = [ENV_NAMES[n] for n in names if not getattr(self, n)]
        if missing:
            raise ConfigurationError(f"missing required setting(s): {', '.join(missing)}")

    @property
    def resolved_manifest_path(self) -> Path:
        return self.manifest_path or self.model_path.with_name("manifest.json")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``); keyword arguments win."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {f: env[e] for f, e in ENV_NAMES.items() if env.get(e, "") != ""}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_NAMES.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc
