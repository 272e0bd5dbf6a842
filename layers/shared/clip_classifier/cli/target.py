"""Which stack the operator's commands act on, and as whom.

``--stack NAME``: a deployed stack, its resources read from its CloudFormation outputs, with the operator's
own AWS credentials (IAM: the ``HeadsOperatorPolicy`` output lists what they need; the scoring API key
reaches none of it). ``--local [FILE]``: the local stack (``make local``), from the outputs file it writes
while it runs (``.local/outputs.json``), with moto's dummy credentials.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3

from clip_classifier.aws import AWS_ERRORS, session_client
from clip_classifier.exceptions import ConfigurationError

#: Where the local stack writes its outputs while it runs (relative to the working directory).
LOCAL_OUTPUTS = Path(".local/outputs.json")
#: The stack outputs the commands use.
OUTPUT_NAMES = (
    "HeadsBucketName",
    "HeadsTableName",
    "ReportsBucketName",
    "ResultsTableName",
    "EvaluateStateMachineArn",
    "RescoreStateMachineArn",
)


@dataclass(frozen=True)
class Target:
    """A stack's resource names and the clients to reach them."""

    name: str
    outputs: dict[str, str]
    session: boto3.session.Session
    #: moto's endpoint for the local stack (``None``: AWS).
    endpoint_url: str | None = None
    #: The local stack's Step Functions endpoint (its state machines run in its own process).
    states_endpoint: str | None = None
    local: bool = False

    def output(self, name: str) -> str:
        value = self.outputs.get(name)
        if not value:
            raise ConfigurationError(
                f"stack {self.name} has no output {name}: deploy the current template.yaml"
            )
        return value

    def client(self, service: str) -> Any:
        endpoint = self.states_endpoint if service == "stepfunctions" else self.endpoint_url
        return session_client(service, session=self.session, endpoint_url=endpoint)

    def who(self) -> str:
        """Who is acting: the caller's IAM ARN, or the local user."""
        if self.local:
            return f"local:{getpass.getuser()}"
        try:
            return str(self.client("sts").get_caller_identity()["Arn"])
        except AWS_ERRORS as exc:
            raise ConfigurationError(
                f"cannot tell who you are in AWS (sts get-caller-identity): {exc}"
            ) from exc


def stack_target(name: str, *, region: str | None = None, profile: str | None = None) -> Target:
    session = boto3.session.Session(region_name=region, profile_name=profile)
    try:
        stacks = session_client("cloudformation", session=session).describe_stacks(StackName=name)["Stacks"]
    except AWS_ERRORS as exc:
        raise ConfigurationError(f"cannot read stack {name}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return Target(name=name, outputs=outputs, session=session)


def local_target(path: Path = LOCAL_OUTPUTS) -> Target:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"no local stack is running ({path} does not exist): start one with 'make local'"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} is not a local stack's outputs file: {exc}") from exc
    try:
        endpoint = str(document["endpoint"])
        _answers(endpoint, path)
        session = boto3.session.Session(
            aws_access_key_id=document["credentials"],
            aws_secret_access_key=document["credentials"],
            aws_session_token=document["credentials"],
            region_name=document["region"],
        )
        return Target(
            name="local",
            outputs={k: str(v) for k, v in document["outputs"].items()},
            session=session,
            endpoint_url=document["endpoint"],
            states_endpoint=document["statesEndpoint"],
            local=True,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"{path} is not a local stack's outputs file: no {exc}") from exc


def _answers(endpoint: str, path: Path) -> None:
    """A stack that was killed leaves its outputs file behind: say so, rather than a connection error."""
    url = urlsplit(endpoint)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=2):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"no local stack answers at {endpoint} ({path} is left from one that stopped): start one with 'make local'"
        ) from exc
