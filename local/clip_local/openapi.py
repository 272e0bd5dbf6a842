"""``python -m clip_local.openapi``: write the scoring API's OpenAPI document to infra/openapi.json."""

from __future__ import annotations

import json

from .handlers import load_function
from .paths import OPENAPI_DOCUMENT, REPO_ROOT


def main() -> int:
    document = json.loads(load_function("score_features").openapi_document())
    target = OPENAPI_DOCUMENT
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
