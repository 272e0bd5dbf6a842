"""What a page of the review queue reads, at table size: the sparse index against a filtered scan.

    python -m bench.review_queue                     # 100,000 results, 10 % waiting for a person
    python -m bench.review_queue --items 5000        # quicker

The results table is made from template.yaml in moto (in-process), filled with upload items as the upload
path writes them (the int8 embedding included: it is what makes a scan expensive), a share of them in the
queue. The first page is read the way ``GET /v1/review`` reads it (``ResultsStore.review_page``: a Query of
the ``ReviewQueue`` index); the reference, measured in the same run, is what the same page costs without the
index: the most uncertain waiting results are known only once every item is read, so a Scan of the whole
table, sorted by margin (the two pages are compared, item for item). Read units are DynamoDB's rule for an
eventually consistent read (4 KB units, halved) over the bytes each one reads, so they hold for AWS whatever
moto reports; the milliseconds are moto's and only compare the two rows.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import boto3
import numpy as np
from moto import mock_aws

from bench.cost_model import item_size, typical_item
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.item_codec import serialize
from clip_classifier.storage.results_table import ResultsStore
from clip_classifier.storage.review_queue import OPEN, review_state
from clip_local.paths import EXAMPLE_WEIGHTS
from clip_local.template import create_table

TABLE = "bench-results"


def read_units(total_bytes: int) -> float:
    """Eventually consistent reads: half a unit per 4 KB, of the bytes read together (a page)."""
    return math.ceil(total_bytes / 4096) * 0.5


def fill(client: Any, head: Head, items: int, queued_share: float, seed: int = 0) -> dict[str, int]:
    """``items`` upload results (the template's table), ``queued_share`` of them waiting; their sizes."""
    rng = np.random.default_rng(seed)
    template = typical_item(head, embedding=True)
    sizes: dict[str, int] = {}
    batch: list[dict[str, Any]] = []
    for i in range(items):
        stored, features = embedding_codec.round_trip(rng.normal(size=head.input_dim).astype(np.float32))
        result = ResultFields.from_prediction(head.predict(features)[0], head_version=head.version)
        picture_id = f"IMG_{i:07d}.jpg"
        _, order = review_state(picture_id, result, labelled=False)
        record = template.model_copy(
            update={
                "picture_id": picture_id,
                "embedding": stored,
                **dict(result),
                "review_queue": OPEN if rng.random() < queued_share else None,
                "review_margin": order,
            }
        )
        item = serialize(record)
        sizes[picture_id] = item_size(item)
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            client.batch_write_item(RequestItems={TABLE: batch})
            batch = []
    if batch:
        client.batch_write_item(RequestItems={TABLE: batch})
    return sizes


def index_page(store: ResultsStore, limit: int) -> tuple[list[str], int, float]:
    """(the page's pictureIds, items read, ms) of the first page through the index."""
    start = time.perf_counter()
    page = store.review_page(limit=limit)
    ms = (time.perf_counter() - start) * 1000
    return [i.picture_id for i in page.items], page.scanned, ms


def scan_page(client: Any, sizes: dict[str, int], limit: int) -> tuple[list[str], int, int, float]:
    """The same page without the index: the most uncertain waiting results are known only after reading
    every item, so a Scan of the whole table (filtered to waiting items), sorted by margin. (the page's
    pictureIds, items read, bytes billed, ms)."""
    waiting: list[tuple[float, str]] = []
    read, start_key = 0, None
    start = time.perf_counter()
    while True:
        kwargs: dict[str, Any] = {
            "TableName": TABLE,
            "FilterExpression": "reviewQueue = :open",
            "ExpressionAttributeValues": {":open": {"S": OPEN}},
            "ProjectionExpression": "pictureId, reviewMargin",
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        response = client.scan(**kwargs)
        read += int(response["ScannedCount"])
        waiting += [(float(i["reviewMargin"]["N"]), i["pictureId"]["S"]) for i in response["Items"]]
        start_key = response.get("LastEvaluatedKey")
        if not start_key:
            break
    page = [picture_id for _, picture_id in sorted(waiting)[:limit]]
    # A scan bills every item it reads, whole, whatever the projection or filter keeps.
    return page, read, sum(sizes.values()), (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queued", type=float, default=0.10, help="share of results waiting (default 0.10)")
    parser.add_argument("--limit", type=int, default=20, help="page size (default 20, the page's)")
    args = parser.parse_args(argv)
    head = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        start = time.perf_counter()
        sizes = fill(client, head, args.items, args.queued)
        filled_s = time.perf_counter() - start
        store = ResultsStore(TABLE, client)
        by_index, read, index_ms = index_page(store, args.limit)
        # The index projects what a reviewer sees, not the embedding: an entry is at most the item without it.
        projected = item_size(serialize(typical_item(head, embedding=False)))
        by_scan, scanned, scan_bytes, scan_ms = scan_page(client, sizes, args.limit)
    mean = int(np.mean(list(sizes.values())))
    print(
        f"{args.items:,} results ({mean:,} B each, {args.queued:.0%} waiting), filled in {filled_s:.0f} s; "
        f"a page of {args.limit}"
    )
    print(f"{'how':<40} {'returned':>9} {'items read':>11} {'read units':>11} {'ms (moto)':>10}")
    print(
        f"{'ReviewQueue index Query (GET /v1/review)':<40} {len(by_index):>9} {read:>11,} "
        f"{read_units(projected * read):>11.1f} {index_ms:>10.1f}"
    )
    print(
        f"{'reference: Scan all, sort by margin':<40} {len(by_scan):>9} {scanned:>11,} "
        f"{read_units(scan_bytes):>11.1f} {scan_ms:>10.1f}"
    )
    print(f"same page both ways: {by_index == by_scan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
