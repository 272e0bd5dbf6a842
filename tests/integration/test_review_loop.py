"""The review loop end to end on the local stack, as its people meet it.

210 images are uploaded and classified under a head whose guard marks part of them ambiguous; over HTTP,
with a reviewer's Cognito token, the queue holds exactly those, most uncertain first; a reviewer labels 50
through the API and 10 through the review page in Chromium; the labels are exported, a head is trained on
them, registered, evaluated (accuracy on the labelled items for both heads), activated and the results
re-scored; every label stays and ``finalLabel`` is right for every item. Beside it, the security promises over
HTTP: the scoring key opens no review route, a reviewer's token opens no scoring route, forged, expired and
unsigned tokens are refused, and racing reviewers leave one consistent item.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from PIL import Image, ImageDraw

from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.storage.review_queue import NONE_OF_THESE, margin
from clip_local.heads import prototype_head
from clip_local.paths import REPO_ROOT, WEB_DIR
from clip_local.stack import LocalStack, local_stack
from tests.integration.test_browser import missing as browser_missing
from tests.integration.test_heads_cli import cli_json
from tests.integration.test_review_cli import guarded

KINDS = ("stripes", "checks", "disc")
PER_KIND = 70
EMAIL, PASSWORD = "reviewer@example.com", "Review-loop-2026"
OTHER_EMAIL = "second.reviewer@example.com"
REVIEW_DRIVER = WEB_DIR / "e2e" / "review.mjs"


#: Each kind's foreground colour family (red, green, blue): kinds differ in shape and in colour, as real
#: classes of photos differ in more than one way.
HUES = {"stripes": 0, "checks": 1, "disc": 2}


def picture(kind: str, seed: int) -> bytes:
    """A 96 × 96 image of one of three visibly different kinds, in random shades and sizes."""
    rng = np.random.default_rng(seed)
    background = tuple(int(c) for c in rng.integers(0, 80, 3))
    shade = [int(c) for c in rng.integers(0, 90, 3)]
    shade[HUES[kind]] = int(rng.integers(170, 256))
    colours = [background, tuple(shade)]
    image = Image.new("RGB", (96, 96), colours[0])
    draw = ImageDraw.Draw(image)
    step = int(rng.integers(6, 20))
    if kind == "stripes":
        for y in range(0, 96, 2 * step):
            draw.rectangle((0, y, 95, y + step - 1), fill=colours[1])
    elif kind == "checks":
        for y in range(0, 96, step):
            for x in range((y // step) % 2 * step, 96, 2 * step):
                draw.rectangle((x, y, x + step - 1, y + step - 1), fill=colours[1])
    else:
        r = int(rng.integers(18, 44))
        cx, cy = (int(v) for v in rng.integers(r, 96 - r, 2))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours[1])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    env = {"WEIGHTS_REFRESH_SECONDS": "0", "EVENT_BUS_NAME": "clip-events"}
    with local_stack(quiet=True, extra_env=env) as running:
        running.add_reviewer(EMAIL, PASSWORD)
        running.add_reviewer(OTHER_EMAIL, PASSWORD)
        yield running


@pytest.fixture(scope="module")
def token(stack: LocalStack) -> str:
    return stack.sign_in(EMAIL, PASSWORD)


@pytest.fixture(scope="module")
def images() -> dict[str, tuple[str, bytes]]:
    """name → (kind, PNG bytes): 70 of each kind."""
    return {
        f"{kind}-{i:03d}.png": (kind, picture(kind, 1000 * k + i))
        for k, kind in enumerate(KINDS)
        for i in range(PER_KIND)
    }


@pytest.fixture(scope="module")
def head(
    stack: LocalStack, images: dict[str, tuple[str, bytes]], tmp_path_factory: pytest.TempPathFactory
) -> Head:
    """A prototype head whose guard calls the 40 % least decided of these images ambiguous: the threshold is
    measured with the stack's own embedder, so the queue is neither empty nor everything."""
    raw = prototype_head(11)
    plain = Head(parse_weights(raw))
    classifier = stack.upload.function().classifier
    margins = []
    for _, data in images.values():
        pixels = classifier.preprocessor(io.BytesIO(data)).pixels
        _, features = embedding_codec.round_trip(classifier.embedder.embed(pixels))
        ranked = ResultFields.from_prediction(plain.predict(features)[0], head_version=plain.version).top
        margins.append(margin(ranked))
    path = tmp_path_factory.mktemp("heads") / "guarded.json"
    path.write_bytes(guarded(raw, min_margin=float(np.quantile(margins, 0.4))))
    stack.activate_head(path)
    return Head(parse_weights(path.read_bytes()))


@pytest.fixture(scope="module")
def uploaded(stack: LocalStack, head: Head, images: dict[str, tuple[str, bytes]]) -> dict[str, str]:
    """Every image uploaded and classified by the upload function: pictureId → its kind."""
    kinds = {}
    for name, (kind, data) in images.items():
        assert stack.upload_file(name, data)
        kinds[picture_id_for_key(stack.key_prefix + name, stack.key_prefix)] = kind
    return kinds


def call(
    stack: LocalStack,
    method: str,
    path: str,
    *,
    token: str | None = None,
    key: str | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    headers = {**({"authorization": token} if token else {}), **({"x-api-key": key} if key else {})}
    data = None
    if body is not None:
        headers["content-type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(f"{stack.api.url}/api{path}", method=method, headers=headers, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def whole_queue(stack: LocalStack, token: str, limit: int = 25) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, page = call(stack, "GET", f"/v1/review?limit={limit}{cursor}", token=token)
        assert status == 200, page
        items += page["items"]
        if page["cursor"] is None:
            return items
        cursor = f"&cursor={page['cursor']}"


def truth(head: Head, kind: str) -> str:
    """What a person says each kind of image is, in the active head's classes."""
    return head.classes[KINDS.index(kind)]


def test_the_queue_over_http_holds_exactly_the_ambiguous_uploads_most_uncertain_first(
    stack: LocalStack, token: str, uploaded: dict[str, str]
) -> None:
    items = {pid: stack.result(pid) for pid in uploaded}
    assert all(i is not None and i.status == "classified" for i in items.values())
    ambiguous = sorted(
        (i for i in items.values() if i is not None and i.ambiguous),
        key=lambda i: (i.review_margin, i.picture_id),
    )
    print(f"{len(ambiguous)} of {len(items)} uploads ambiguous")
    assert 70 <= len(ambiguous) <= 100  # the guard's 40 % quantile of 210
    queue = whole_queue(stack, token)
    assert [q["pictureId"] for q in queue] == [i.picture_id for i in ambiguous]
    margins = [q["margin"] for q in queue]
    assert margins == sorted(margins)
    for row in queue[:5]:  # the links open the uploaded bytes
        with urllib.request.urlopen(row["imageUrl"], timeout=10) as reply:
            assert reply.read()[:8] == b"\x89PNG\r\n\x1a\n"


def _forge(claims: dict[str, Any], key: Any, *, alg: str = "RS256", kid: str = "dummy") -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    signing = f"{part({'alg': alg, 'kid': kid})}.{part(claims)}"
    signature = b"" if key is None else key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def _moto_signing_key() -> Any:
    """The key moto's Cognito signs its tokens with (its published private JWK): a token signed with it but
    expired is exactly what an old, stolen token looks like."""
    data = (files("moto.cognitoidp") / "resources" / "jwks-private.json.gz").read_bytes()
    jwk = json.loads(gzip.decompress(data))
    n, e, d = (int.from_bytes(base64.urlsafe_b64decode(jwk[k] + "=="), "big") for k in "ned")
    p, q = rsa.rsa_recover_prime_factors(n, e, d)  # the JWK carries n, e and d only
    crt = (rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q))
    return rsa.RSAPrivateNumbers(p, q, d, *crt, rsa.RSAPublicNumbers(e, n)).private_key()


def test_the_review_routes_take_a_reviewer_and_nothing_else(
    stack: LocalStack, token: str, uploaded: dict[str, str], head: Head
) -> None:
    picture_id = next(iter(uploaded))
    label_path = f"/v1/classifications/{picture_id}/label"
    # The scoring key reads no queue and writes no label.
    for method, path, body in (("GET", "/v1/review", None), ("PUT", label_path, {"label": head.classes[0]})):
        status, answer = call(stack, method, path, key=stack.api_key, body=body)
        assert status == 401 and answer["code"] == "unauthorized", answer
    # A reviewer's token scores nothing and reads no scoring route.
    for method, path in (("GET", "/v1/model"), ("GET", f"/v1/classifications/{picture_id}")):
        status, answer = call(stack, method, path, token=token)
        assert status == 403 and answer["code"] == "invalid_api_key"
    status, _ = call(stack, "POST", "/v1/scores", token=token, body={"features": [0.1] * 512})
    assert status == 403
    # Forged (another key), expired (moto's own key, a past exp), unsigned, and tampered tokens.
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    forged = _forge(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    expired = _forge({**claims, "exp": int(time.time()) - 60}, _moto_signing_key())
    unsigned = _forge(claims, None, alg="none")
    head_part, _, signature = token.split(".")
    tampered = (
        f"{head_part}.{_forge({**claims, 'email': 'boss@example.com'}, None).split('.')[1]}.{signature}"
    )
    still_valid = _forge(claims, _moto_signing_key())  # the control: the same claims, moto's key, not expired
    for bad in (forged, expired, unsigned, tampered, "Bearer", ""):
        status, answer = call(stack, "PUT", label_path, token=bad, body={"label": head.classes[0]})
        assert status == 401 and answer["errors"][0]["field"] == "Authorization"
    assert call(stack, "GET", "/v1/review?limit=1", token=still_valid)[0] == 200
    item = stack.result(picture_id)
    assert item is not None and item.person_label is None
    # A label outside the classes names it; an unknown picture is a 404.
    status, answer = call(stack, "PUT", label_path, token=token, body={"label": "kitten"})
    assert status == 422 and answer["errors"][0]["field"] == "label" and '"kitten"' in answer["message"]
    status, answer = call(
        stack, "PUT", "/v1/classifications/no-such.png/label", token=token, body={"label": NONE_OF_THESE}
    )
    assert status == 404


def test_two_reviewers_racing_leave_one_consistent_item(stack: LocalStack, token: str, head: Head) -> None:
    other = stack.sign_in(OTHER_EMAIL, PASSWORD)
    queue = whole_queue(stack, token)
    picture_id = queue[-1]["pictureId"]  # the least doubtful: the 60 labels below start at the front
    path = f"/v1/classifications/{picture_id}/label"
    answers: list[tuple[str, int]] = []

    def label(who: str, tok: str, value: str) -> None:
        for _ in range(10):
            answers.append((value, call(stack, "PUT", path, token=tok, body={"label": value})[0]))

    threads = [
        threading.Thread(target=label, args=(EMAIL, token, head.classes[0])),
        threading.Thread(target=label, args=(OTHER_EMAIL, other, head.classes[1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(status == 200 for _, status in answers)
    item = stack.result(picture_id)
    assert item is not None and item.review_queue is None
    by = {head.classes[0]: f"cognito:{EMAIL}", head.classes[1]: f"cognito:{OTHER_EMAIL}"}
    assert item.labeled_by == by[str(item.person_label)]  # label and who gave it: from the same write
    assert call(stack, "DELETE", path, token=token)[0] == 200
    assert call(stack, "DELETE", path, token=other)[0] == 404  # nothing left to withdraw


def test_fifty_labels_through_the_api(
    stack: LocalStack, token: str, uploaded: dict[str, str], head: Head
) -> None:
    queue = whole_queue(stack, token)
    for row in queue[:50]:
        status, answer = call(
            stack, "PUT", f"/v1/classifications/{row['pictureId']}/label", token=token,
            body={"label": truth(head, uploaded[row["pictureId"]])},
        )  # fmt: skip
        assert status == 200 and answer["finalLabel"] == truth(head, uploaded[row["pictureId"]])
    after = whole_queue(stack, token)
    assert [r["pictureId"] for r in after] == [r["pictureId"] for r in queue[50:]]


@pytest.mark.skipif(browser_missing is not None, reason=browser_missing or "")
def test_ten_labels_through_the_review_page(
    stack: LocalStack, token: str, uploaded: dict[str, str], head: Head, tmp_path: Path
) -> None:
    """Sign in, label with keys and clicks (the right class for each image, by its choice's number), skip
    one, undo one and redo it: 10 labels land, exactly as the page says."""
    queue = whole_queue(stack, token)[:20]  # the page's first page
    actions: list[dict[str, Any]] = []
    expected: dict[str, str] = {}
    for position, row in enumerate(queue[:11]):
        wanted = truth(head, uploaded[row["pictureId"]])
        order = [t["label"] for t in row["top"][:3]] + [
            c for c in head.classes if c not in [t["label"] for t in row["top"][:3]]
        ]
        index = order.index(wanted)
        if position == 3:
            actions.append({"key": "s"})  # skipped: stays in the queue
            continue
        if position % 2 and index < 3:
            actions.append({"click": "choice", "index": index})
        else:
            actions.append({"key": str(index + 1)} if index < 9 else {"click": "choice", "index": index})
        expected[row["pictureId"]] = wanted
        if position == 5:  # undo the label just given, then give it again
            actions += [
                {"key": "u"},
                {"key": str(index + 1)} if index < 9 else {"click": "choice", "index": index},
            ]
    plan = {
        "url": stack.review_page_url(),
        "email": EMAIL,
        "password": PASSWORD,
        "actions": actions,
        "viewport": {"width": 390, "height": 844},
    }
    plan_path, out = tmp_path / "plan.json", tmp_path / "out.json"
    plan_path.write_text(json.dumps(plan))
    run = subprocess.run(
        ["node", str(REVIEW_DRIVER), str(plan_path), str(out)],
        capture_output=True, text=True, timeout=300, cwd=WEB_DIR, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert seen["console"] == [] and seen["brokenImages"] == 0 and not seen["overflow"], seen
    assert [f for f in seen["failed"] if f["status"] != 401] == []
    page = seen["review"]
    assert page["signedIn"] and page["done"] == 10 and page["error"] is None
    assert not seen["signInShown"] and seen["toolbarShown"]  # signed in: the form is gone
    assert {h["pictureId"]: h["label"] for h in page["history"]} == expected
    assert seen["progress"].startswith("10 labelled · 9 left on this page · 1 skipped")
    skipped = queue[3]["pictureId"]
    assert [c["state"] for c in page["cards"] if c["pictureId"] == skipped] == ["skipped"]
    first = seen["shown"][0]
    assert first["hasImage"] and len(first["top"]) == 3 and first["verdict"].startswith("labelled: ")
    for picture_id, label in expected.items():
        item = stack.result(picture_id)
        assert item is not None and item.person_label == label and item.labeled_by == f"cognito:{EMAIL}"
    assert skipped in {r["pictureId"] for r in whole_queue(stack, token)}


def test_export_train_evaluate_activate_rescore_keeps_every_label(
    stack: LocalStack, outputs: Path, token: str, uploaded: dict[str, str], head: Head, tmp_path: Path
) -> None:
    labelled = {pid: r.person_label for pid in uploaded if (r := stack.result(pid)) and r.person_label}
    assert len(labelled) >= 50
    assert all(label == truth(head, uploaded[pid]) for pid, label in labelled.items())
    npz = tmp_path / "labels.npz"
    exported = cli_json(outputs, "labels", "export", "--out", str(npz))
    assert exported["items"] == len(labelled)
    # The trainer combines what people said with a folder of images per class (named as the labels).
    folders = tmp_path / "more"
    for k, kind in enumerate(KINDS):
        (folders / truth(head, kind)).mkdir(parents=True)
        for i in range(8):
            (folders / truth(head, kind) / f"{kind}-{i}.png").write_bytes(picture(kind, 50_000 + 100 * k + i))
    candidate = tmp_path / "candidate.json"
    trained = subprocess.run(
        [sys.executable, str(REPO_ROOT / "weights" / "train_head.py"), "--features", str(npz),
         "--images", str(folders), "--head-type", "prototype", "--model-dir", str(stack.model_dir),
         "--cache-dir", str(tmp_path / "cache"), "--out", str(candidate), "--quiet"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    doc = json.loads(candidate.read_text())
    assert doc["classes"] == sorted(truth(head, kind) for kind in KINDS)
    version = cli_json(outputs, "heads", "add", str(candidate))["head"]["version"]
    report = cli_json(outputs, "heads", "evaluate", version[:12])["report"]
    people = report["labelled"]
    assert people["items"] == len(labelled)
    # Trained on what people said, the candidate agrees with them; the guarded random head cannot.
    print(
        f"labelled items {people['items']}: candidate accuracy {people['candidateAccuracy']:.3f}, "
        f"active {people['activeAccuracy']:.3f}"
    )
    assert people["candidateAccuracy"] >= 0.9 > people["activeAccuracy"], people
    assert cli_json(outputs, "heads", "activate", version[:12], "--rescore")["rescore"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        after = {pid: stack.result(pid) for pid in uploaded}
        if all(i is not None and i.head_version == version for i in after.values()):
            break
        time.sleep(0.5)
    for pid, item in after.items():
        assert item is not None and item.head_version == version, pid
        if pid in labelled:
            assert item.person_label == labelled[pid] and item.final_label == labelled[pid]
            assert item.review_queue is None
        else:
            assert item.person_label is None and item.final_label == item.top_label
        status, shown = call(stack, "GET", f"/v1/classifications/{pid}", key=stack.api_key)
        assert status == 200 and shown["finalLabel"] == item.final_label
