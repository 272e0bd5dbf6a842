from __future__ import annotations

import re

import pytest

from clip_classifier.storage.picture_id import PICTURE_ID_PATTERN, picture_id_for_key


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("uploads/IMG_0042.jpg", "IMG_0042.jpg"),
        ("uploads/a+b(1).png", "a+b(1).png"),
        ("other/IMG_1.jpg", None),  # outside the prefix: the whole key is hashed
        ("uploads/sub/dir.jpg", None),
        ("uploads/été photo.jpg", None),
        ("uploads/with space.jpg", None),
        ("uploads/" + "x" * 201, None),
        ("uploads/key-abc.jpg", None),  # cannot pose as a hashed id
    ],
)
def test_rule(key: str, expected: str | None) -> None:
    got = picture_id_for_key(key, "uploads/")
    if expected is not None:
        assert got == expected
    else:
        assert re.fullmatch(r"key-[0-9a-f]{40}", got)
        assert got == picture_id_for_key(key, "uploads/")  # deterministic
    assert re.fullmatch(PICTURE_ID_PATTERN, got)  # always usable in the API


def test_distinct_keys_get_distinct_ids() -> None:
    keys = [f"uploads/dir/{i}.jpg" for i in range(1000)] + ["uploads/a b.jpg", "uploads/a  b.jpg"]
    assert len({picture_id_for_key(k, "uploads/") for k in keys}) == len(keys)
