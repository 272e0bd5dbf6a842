"""A model whose embedding no head can score is a model fault: the record is retried, never stored.

The graph is the real tiny CLIP export with one node appended that scales its embedding past float32's
range for the stored norm (finite components, an L2 norm above 3.4e38), as a broken export could.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from clip_classifier.exceptions import ModelOutputError
from clip_classifier.model.manifest import file_sha256
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.apigw import LambdaContext
from clip_local.handlers import load_function
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR
from clip_local.template import create_bucket
from tests.conftest import build_upload
from tests.helpers import load_event

onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.export

BUCKET = "clip-uploads-local"  # the bucket named in infra/events/s3_*.json
KEY = "uploads/sample photo.jpg"


def scaled_model(folder: Path, factor: float) -> Path:
    """The tiny fp32 model with its embedding multiplied by ``factor``, and a manifest that vouches for it."""
    source = TINY_MODEL_DIR / "fp32"
    manifest = json.loads((source / "manifest.json").read_text())
    model = onnx.load(str(source / "model.onnx"))
    graph = model.graph
    output = manifest["output_name"]
    for node in graph.node:
        node.output[:] = [f"{name}_raw" if name == output else name for name in node.output]
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(factor, np.float32), "scale"))
    graph.node.append(onnx.helper.make_node("Mul", [f"{output}_raw", "scale"], [output]))
    onnx.checker.check_model(model)
    folder.mkdir()
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    manifest["model_sha256"] = file_sha256(path)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_an_embedding_beyond_float32_norm_retries_the_record(
    dynamodb: Any, weights_uri: str, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    create_bucket(s3, BUCKET)
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    put = s3.put_object(Bucket=BUCKET, Key=KEY, Body=data)
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"].update(eTag=put["ETag"].strip('"'), size=len(data))

    fine = build_upload(
        tmp_path,
        WEIGHTS_URI=weights_uri,
        UPLOAD_BUCKET=BUCKET,
        MODEL_PATH=str(scaled_model(tmp_path / "one", 1.0)),
    )
    # Scale so the largest component of this image's embedding is 3e38: every component stays finite.
    pixels = fine.classifier.preprocessor(data).pixels
    factor = 3.0e38 / float(np.abs(fine.classifier.embedder.embed(pixels)).max())
    upload = build_upload(
        tmp_path,
        WEIGHTS_URI=weights_uri,
        UPLOAD_BUCKET=BUCKET,
        MODEL_PATH=str(scaled_model(tmp_path / "huge", factor)),
    )
    embedding = upload.classifier.embedder.embed(pixels)
    assert np.isfinite(embedding).all() and np.linalg.norm(embedding.astype(np.float64)) > 3.4e38

    handler = load_function("classify_upload").create_handler(upload)
    with pytest.raises(ModelOutputError, match="L2 norm is .*float32's range"):
        handler(event, LambdaContext())
    # Nothing half-made is stored: the retry (then the dead-letter queue) keeps the record for a replay.
    assert upload.classifier.store.get(picture_id_for_key(KEY, "uploads/")) is None

    # The same image under the unscaled export is classified: the refusal is the model's, not the image's.
    outcome = load_function("classify_upload").create_handler(fine)(event, LambdaContext())
    assert outcome["outcomes"] == {"classified": 1}
