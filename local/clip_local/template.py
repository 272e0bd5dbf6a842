"""Read template.yaml and build the same resources in moto, so tests cannot drift from the template."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cfnlint.decode import decode

from .apigw import Route
from .paths import REPO_ROOT, TEMPLATE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@functools.cache
def _decoded(path: Path) -> str:
    """The template as JSON text, read once per process by cfn-lint's own CloudFormation decoder (short-form
    tags such as ``!Ref`` and ``!GetAtt A.B`` become ``{"Ref": ...}`` and ``{"Fn::GetAtt": [A, B]}``)."""
    template, problems = decode(str(path))
    if problems or template is None:
        raise ValueError(f"{path} cannot be read: {'; '.join(str(p) for p in problems)}")
    return json.dumps(template)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data (a fresh copy: callers may change it)."""
    template: dict[str, Any] = json.loads(_decoded(path))
    return template


def gateway_responses(template: dict[str, Any]) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """API Gateway's own answers as the template configures them (``ScoreApi.GatewayResponses``): response
    type → (status, headers, JSON body). The defaults, which need API Gateway's ``$context``, are left out.
    Header values are static mapping expressions (``"'*'"``): the quoted string is the value."""
    configured = resource(template, "ScoreApi")["Properties"].get("GatewayResponses", {})
    answers = {}
    for kind, spec in configured.items():
        body = spec.get("ResponseTemplates", {}).get("application/json", "")
        if "StatusCode" in spec and "$context" not in body:
            headers = {
                name: value.strip("'")
                for name, value in spec.get("ResponseParameters", {}).get("Headers", {}).items()
            }
            answers[kind] = (int(spec["StatusCode"]), headers, body.encode())
    return answers


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    res: dict[str, Any] = template["Resources"][logical_id]
    return res


def create_table(client: DynamoDBClient, table_name: str, *, logical_id: str = "ResultsTable") -> None:
    """Create the results table exactly as the template declares it (keys, indexes, billing, TTL)."""
    props = resource(load_template(), logical_id)["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props["BillingMode"],
    }
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        kwargs["SSESpecification"] = {"Enabled": True}
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    client.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )


def create_bucket(client: S3Client, bucket_name: str, *, logical_id: str = "UploadBucket") -> None:
    """Create the upload bucket with the template's versioning, encryption and public-access block."""
    props = resource(load_template(), logical_id).get("Properties", {})
    client.create_bucket(Bucket=bucket_name)
    if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        client.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
    if "PublicAccessBlockConfiguration" in props:
        client.put_public_access_block(
            Bucket=bucket_name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "BucketEncryption" in props:
        # CloudFormation says ServerSideEncryptionByDefault where the S3 API says ApplyServerSideEncryptionByDefault.
        rules: Any = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
            }
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        encryption: Any = {"Rules": rules}
        client.put_bucket_encryption(Bucket=bucket_name, ServerSideEncryptionConfiguration=encryption)


def create_queue(client: SQSClient, queue_name: str, *, logical_id: str = "UploadDeadLetterQueue") -> str:
    props = resource(load_template(), logical_id).get("Properties", {})
    attributes: Any = {
        k: str(props[k]) for k in ("MessageRetentionPeriod", "VisibilityTimeout") if k in props
    }
    return client.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]


def api_routes(template: dict[str, Any], function_logical_id: str) -> list[Route]:
    """Every Api event of a function as a route, with its API-key requirement (the event's
    ``Auth.ApiKeyRequired``, else the API's) and its authorizer (the event's ``Auth.Authorizer``)."""
    events = resource(template, function_logical_id)["Properties"].get("Events", {})
    routes = []
    for event in events.values():
        if event["Type"] != "Api":
            continue
        props = event["Properties"]
        api = resource(template, props["RestApiId"]["Ref"])["Properties"]
        default = bool(api.get("Auth", {}).get("ApiKeyRequired", False))
        required = bool(props.get("Auth", {}).get("ApiKeyRequired", default))
        authorizer = props.get("Auth", {}).get("Authorizer")
        if authorizer is not None and authorizer not in api.get("Auth", {}).get("Authorizers", {}):
            raise ValueError(f"{function_logical_id}: authorizer {authorizer} is not one of the API's")
        routes.append(
            Route.of(
                props["Method"].upper(),
                props["Path"],
                api_key_required=required,
                function=function_logical_id,
                authorizer=authorizer,
            )
        )
    return routes


def resolve(template: dict[str, Any], value: Any) -> Any:
    """Resolve ``{"Ref": Parameter}`` to the parameter's default (enough for local environment values)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        param = template.get("Parameters", {}).get(value["Ref"])
        if param is not None:
            return param.get("Default", "")
    return value


def function_environment(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """A function's environment as deployed — Globals, then its own variables — where the template fixes
    the value (parameters at their defaults); references to resources are left for the caller to set."""
    global_vars = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = resource(template, logical_id)["Properties"].get("Environment", {}).get("Variables", {})
    variables = {**global_vars, **own}
    env = {}
    for name, value in variables.items():
        resolved = resolve(template, value)
        if isinstance(resolved, str | int | float):
            env[name] = str(resolved)
    return env


def max_retry_attempts(template: dict[str, Any], logical_id: str) -> int:
    config = resource(template, logical_id)["Properties"].get("EventInvokeConfig", {})
    return int(resolve(template, config.get("MaximumRetryAttempts", 2)))


def function_timeout(template: dict[str, Any], logical_id: str) -> float:
    """The function's ``Timeout`` in seconds (its own, else Globals', else Lambda's default of 3)."""
    own = resource(template, logical_id)["Properties"].get("Timeout")
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return float(resolve(template, own if own is not None else default))


def function_arn(logical_id: str) -> str:
    """The ARN a local state machine uses for a function (its logical id as the name)."""
    return f"arn:aws:lambda:us-east-1:000000000000:function:{logical_id}"


def state_machine_definition(
    template: dict[str, Any], logical_id: str, values: Mapping[str, str | int | float]
) -> dict[str, Any]:
    """A state machine's definition file with its ``DefinitionSubstitutions`` applied, as CloudFormation
    applies them: parameters at their defaults unless ``values`` names them, resources from ``values``. A
    placeholder nobody fills in is an error, so the file and the template cannot drift apart."""
    props = resource(template, logical_id)["Properties"]
    text = (REPO_ROOT / props["DefinitionUri"]).read_text(encoding="utf-8")
    substitutions: dict[str, str] = {}
    for name, value in props.get("DefinitionSubstitutions", {}).items():
        resolved = values.get(name, resolve(template, value))
        if not isinstance(resolved, str | int | float):
            raise ValueError(f"{logical_id}: substitution {name} ({resolved}) needs a local value")
        substitutions[name] = str(resolved)
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    if placeholders - set(substitutions):
        raise ValueError(f"{logical_id}: {sorted(placeholders - set(substitutions))} are not substituted")
    definition: dict[str, Any] = json.loads(re.sub(r"\$\{(\w+)\}", lambda m: substitutions[m.group(1)], text))
    return definition
