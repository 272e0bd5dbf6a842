"""A classifier from words: class names (and prompts) → a zero-shot head in the runtime's weights format.

Needs the text tower exported beside the vision model (``weights/export_clip_onnx.py --text``)::

    python weights/zero_shot_head.py --classes classes.txt --templates openai-80 \\
        --model-dir weights/models/vit-b-32/int8 --out head.json
    python weights/zero_shot_head.py --classes classes.txt --prompts prompts.txt \\
        --model-dir weights/models/vit-b-32/int8 --out head.json

``--classes``: one label per line, in output order. ``--templates``: a published template set filled with
each label (``openai-80``, ``openai-7``, ``single``); ``--prompts``: the classes' own descriptions, lines of
``label: description``, any number per class. ``--model-dir`` is the vision model's folder (as everywhere);
the text tower is found at ``<model-dir>/../text/fp32`` (fp32: the head is computed once, offline) unless
``--text-model-dir`` says otherwise, and must have been exported with that vision model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clip_classifier.exceptions import ClassifierError
from clip_classifier.model.manifest import load_manifest
from clip_export.prompt_templates import TEMPLATE_SETS
from clip_export.text_model import TextEncoder
from clip_export.zero_shot import (
    check_pairing,
    class_prototypes,
    from_templates,
    read_classes,
    read_prompts,
    zero_shot_document,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--classes", type=Path, required=True)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--templates", choices=sorted(TEMPLATE_SETS), default="openai-80")
    source.add_argument("--prompts", type=Path, help="'label: description' lines, instead of templates")
    parser.add_argument("--model-dir", type=Path, required=True, help="the vision model's folder")
    parser.add_argument("--text-model-dir", type=Path, help="default: <model-dir>/../text/fp32")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    classes = read_classes(args.classes)
    if args.prompts:
        prompts, prompt_source = read_prompts(args.prompts, classes), f"prompts file {args.prompts.name}"
    else:
        prompts, prompt_source = from_templates(classes, TEMPLATE_SETS[args.templates]), args.templates
    try:
        vision = load_manifest(args.model_dir / "manifest.json")
    except ClassifierError as exc:
        raise SystemExit(
            f"--model-dir {args.model_dir}: {exc.message} (export one with 'make model', or pass another folder)"
        ) from exc
    encoder = TextEncoder(args.text_model_dir or args.model_dir.parent / "text" / "fp32")
    check_pairing(vision, encoder.manifest)
    doc = zero_shot_document(
        classes, class_prototypes(encoder, prompts), encoder.manifest, vision, prompts, prompt_source
    )
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SystemExit(f"--out {args.out}: cannot be written ({exc.strerror})") from exc
    total = sum(len(texts) for texts in prompts.values())
    print(
        f"wrote {args.out}: {len(classes)} classes from {total} prompts ({prompt_source}), "
        f"logit scale {encoder.manifest.logit_scale:.4f}, head {doc['content_sha256'][:12]}"
    )
    if vision.random_init:
        print("note: random-init model: the zero-shot head is well-formed but its predictions mean nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
