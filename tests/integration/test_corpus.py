"""Every corpus image through the local stack: the stated outcome, one item per upload, no retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image

from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.stack import LocalStack, local_stack
from tests.corpus.images import MAX_BYTES, ImageCase, image_cases, round_two_cases

CASES = [*image_cases(), *round_two_cases()]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(extra_env={"MAX_IMAGE_BYTES": str(MAX_BYTES)}) as running:
        yield running


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.case for c in CASES])
def test_corpus_case(stack: LocalStack, case: ImageCase) -> None:
    before = len(stack.invoker.attempts)
    assert stack.upload_file(case.name, case.payload())
    assert stack.invoker.attempts[before:] == [1], "handled on the first attempt"
    record = stack.result(picture_id_for_key(stack.key_prefix + case.name, stack.key_prefix))
    assert record is not None, "an upload never leaves no trace"
    if case.expected == "classified":
        assert record.status == "classified", record.error
        assert record.probabilities is not None and abs(sum(record.probabilities.values()) - 1) <= 1e-6
    else:
        assert record.status == "failed"
        assert record.error is not None and record.error.code == case.expected, record.error
        assert record.error.message


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_are_applied(orientation: int) -> None:
    import io

    from clip_classifier.image.limits import ImageLimits
    from clip_classifier.image.preprocess import open_image, to_rgb
    from tests.corpus.images import with_orientation

    rgb = to_rgb(open_image(with_orientation(orientation), ImageLimits()))
    # 5-8 swap width and height (transpose/rotate 90/270); 1-4 keep them.
    assert rgb.size == ((120, 160) if orientation >= 5 else (160, 120))
    with Image.open(io.BytesIO(with_orientation(orientation))) as raw:
        assert raw.getexif()[0x0112] == orientation
