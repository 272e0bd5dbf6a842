"""The browser client's golden data (web/test/golden.json) is what the Python pipeline computes today, so the
JavaScript tests (``npm test`` in web/, run by ``make test``) compare with the current pipeline."""

from __future__ import annotations

import json

from clip_local.paths import REPO_ROOT
from tests.fixtures.make_web_golden import GOLDEN, golden, pattern


def test_the_committed_golden_file_is_current() -> None:
    committed = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(golden())), "run: python tests/fixtures/make_web_golden.py"


def test_the_pattern_has_texture_and_both_languages_share_it() -> None:
    image = pattern(64, 48, 3, 2)
    assert image.shape == (48, 64, 3) and len({int(v) for v in image.reshape(-1)}) > 200
    # The JavaScript twin names the same constants (a cheap guard against editing only one of them).
    twin = (REPO_ROOT / "web" / "test" / "pattern.js").read_text(encoding="utf-8")
    for constant in ("73856093", "19349663", "83492791", "2654435761", "& 63", "* 85"):
        assert constant in twin
