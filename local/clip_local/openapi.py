"""``python -m clip_local.openapi``: write the API's OpenAPI documents: the scoring routes (API key) to
infra/openapi.json, the reviewers' routes (Cognito) to infra/openapi-review.json."""

from __future__ import annotations

import json

from .handlers import load_function
from .paths import OPENAPI_DOCUMENT, REPO_ROOT, REVIEW_OPENAPI_DOCUMENT


def main() -> int:
    for function, target in (
        ("score_features", OPENAPI_DOCUMENT),
        ("review_labels", REVIEW_OPENAPI_DOCUMENT),
    ):
        document = json.loads(load_function(function).openapi_document())
        target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
