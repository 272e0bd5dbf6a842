"""``python -m clip_local.event_schemas``: write the JSON schema of each event the stack publishes to
``infra/event-schemas/`` (one file per detail type, the whole EventBridge event: source, detail-type and the
detail, from the models in ``clip_classifier.events.messages``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clip_classifier.events.messages import DETAILS, SOURCE, Detail

from .paths import REPO_ROOT

SCHEMAS_DIR = REPO_ROOT / "infra" / "event-schemas"


def file_name(detail: type[Detail]) -> str:
    return detail.DETAIL_TYPE.lower().replace(" ", "-") + ".json"


def event_schema(detail: type[Detail]) -> dict[str, Any]:
    body = detail.model_json_schema(by_alias=True)
    # The detail's "#/$defs/..." references resolve against the document's root: the definitions go there.
    definitions = body.pop("$defs", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **({"$defs": definitions} if definitions else {}),
        "title": detail.DETAIL_TYPE,
        "description": (detail.__doc__ or "").strip(),
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": {"const": SOURCE},
            "detail-type": {"const": detail.DETAIL_TYPE},
            "detail": body,
        },
    }


def schemas() -> dict[str, dict[str, Any]]:
    return {file_name(d): event_schema(d) for d in DETAILS}


def main(folder: Path = SCHEMAS_DIR) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (folder / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {(folder / name).relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
