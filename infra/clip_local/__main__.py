"""``python -m clip_local``: run the local stack until Ctrl-C and show how to call it."""

from __future__ import annotations

import argparse
import signal
import threading

from .stack import local_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clip_local", description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="port of the local API (default 3000)")
    parser.add_argument("--moto-port", type=int, default=5000, help="port of the moto server (default 5000)")
    parser.add_argument("--api-key", default="local-dev-key", help="x-api-key the local API requires")
    parser.add_argument("--once", action="store_true", help="start, print the banner and exit (smoke test)")
    args = parser.parse_args(argv)

    with local_stack(api_port=args.port, moto_port=args.moto_port, api_key=args.api_key) as stack:
        url = stack.api.url
        print(f"moto (S3, DynamoDB) on {stack.endpoint}; table {stack.table}; weights {stack.weights_uri}")
        print(f"API on {url}/api   (x-api-key: {stack.api_key})")
        print("Try:")
        print(f"  curl -s -H 'x-api-key: {stack.api_key}' {url}/api/v1/model")
        print(
            f"  curl -s -H 'x-api-key: {stack.api_key}' -H 'content-type: application/json' "
            f'-d "{{\\"pictureId\\": \\"demo-1\\", \\"features\\": [$(python3 -c \'print(",".join(["0.01"]*512))\')]}}" '
            f"{url}/api/v1/scores"
        )
        print(f"  curl -s -H 'x-api-key: {stack.api_key}' {url}/api/v1/classifications/demo-1")
        if args.once:
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("Ctrl-C to stop.", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
