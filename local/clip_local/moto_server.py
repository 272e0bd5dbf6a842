"""A moto server on 127.0.0.1, and explicit boto3 clients pointed at it (nothing is exported to the
process environment, so several stacks and the tests' own moto never see each other's endpoints)."""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from clip_classifier.aws import AwsClients, session_client

REGION = "us-east-1"
#: moto accepts any credentials; these never leave this machine.
DUMMY_SECRET = "testing"  # noqa: S105 - moto ignores credentials


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class LocalAws:
    """How to reach one moto server: explicit endpoint, region and dummy credentials."""

    endpoint: str

    def session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=DUMMY_SECRET,
            aws_secret_access_key=DUMMY_SECRET,
            aws_session_token=DUMMY_SECRET,
            region_name=REGION,
        )

    def client(self, service: str) -> Any:
        """A client with the functions' retry and timeout config."""
        return session_client(service, session=self.session(), endpoint_url=self.endpoint)

    def clients(self) -> AwsClients:
        """What a function's builder takes: the clients of one execution environment."""
        return AwsClients.create(self.session(), endpoint_url=self.endpoint)


def _reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback moto server
        pass


@contextmanager
def moto_server(port: int | None = None) -> Iterator[LocalAws]:
    """Run moto on 127.0.0.1 until the block ends."""
    port = port or free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    aws = LocalAws(f"http://127.0.0.1:{port}")
    try:
        _reset(aws.endpoint)  # moto backends are per process: start from nothing, whatever ran before
        yield aws
    finally:
        _reset(aws.endpoint)
        server.stop()
