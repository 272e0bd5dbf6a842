"""The upload pipeline over in-memory fakes of its ports and the real tiny ONNX model: the core flows in
milliseconds, without moto (the moto and local-stack tests prove the adapters)."""

from __future__ import annotations

import pytest

from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.jobs.upload import UploadClassifier
from clip_classifier.model.embedder import Embedder
from clip_local.paths import TINY_MODEL_DIR
from tests.fakes.heads import FixedHead
from tests.fakes.objects import InMemoryObjectSource
from tests.fakes.results import InMemoryResultStore

BUCKET = "uploads-bucket"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(TINY_MODEL_DIR / "int8" / "model.onnx", threads=1)


@pytest.fixture
def objects() -> InMemoryObjectSource:
    return InMemoryObjectSource(max_bytes=ImageLimits().max_bytes)


@pytest.fixture
def results() -> InMemoryResultStore:
    return InMemoryResultStore()


@pytest.fixture
def head() -> FixedHead:
    return FixedHead()


@pytest.fixture
def classifier(
    objects: InMemoryObjectSource, results: InMemoryResultStore, head: FixedHead, embedder: Embedder
) -> UploadClassifier:
    return UploadClassifier(
        source=objects,
        store=results,
        weights=head,
        embedder=embedder,
        preprocessor=Preprocessor(embedder.manifest.transform, ImageLimits()),
        key_prefix="uploads/",
        bucket=BUCKET,
    )
