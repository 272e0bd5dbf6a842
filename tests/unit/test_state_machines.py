"""The state machine definitions (infra/statemachines/) against the template, cfn-lint's Amazon States
Language schema and the handlers they call; and the local interpreter that runs them on the local stack."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import boto3
import pytest
from cfnlint.api import lint

from clip_classifier.exceptions import TransientBatchError
from clip_classifier.jobs.backfill import BatchInput
from clip_local.paths import REPO_ROOT
from clip_local.step_functions import FunctionError, LocalStepFunctions, UnsupportedDefinition
from clip_local.template import function_arn, load_template, resource, state_machine_definition

TEMPLATE = load_template()
MACHINES = ("BackfillStateMachine", "RescoreStateMachine")
LOCAL = {
    "UploadBucket": "clip-uploads-local",
    "ReportsBucket": "clip-reports-local",
    "WeightsUri": "s3://models/heads/head.json",
    "BackfillFunctionArn": function_arn("BackfillBatchFunction"),
    "RescoreFunctionArn": function_arn("RescoreResultsFunction"),
}


@pytest.mark.parametrize("logical_id", MACHINES)
def test_placeholders_and_substitutions_match(logical_id: str) -> None:
    props = resource(TEMPLATE, logical_id)["Properties"]
    text = (REPO_ROOT / props["DefinitionUri"]).read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(props["DefinitionSubstitutions"])
    json.loads(text)  # valid JSON before substitution too (numbers go through States.StringToJson)


@pytest.mark.parametrize("logical_id", MACHINES)
def test_definitions_pass_cfn_lints_states_language_rules(logical_id: str) -> None:
    definition = state_machine_definition(TEMPLATE, logical_id, LOCAL)
    document = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"RoleArn": "arn:aws:iam::123456789012:role/machine", "Definition": definition},
            }
        },
    }
    assert [str(m) for m in lint(json.dumps(document))] == []
    broken = json.loads(json.dumps(document))
    broken["Resources"]["Machine"]["Properties"]["Definition"]["States"]["Settings"]["Bogus"] = 1
    assert any("Bogus" in str(m) for m in lint(json.dumps(broken)))  # the check can fail


def test_both_backfill_maps_run_the_same_batches_and_retry_the_handlers_error() -> None:
    states = state_machine_definition(TEMPLATE, "BackfillStateMachine", LOCAL)["States"]
    listed, manifest = states["BackfillListedKeys"], states["BackfillManifestKeys"]
    assert listed["ItemProcessor"] == manifest["ItemProcessor"]
    for state, source in ((listed, "listing"), (manifest, "manifest")):
        batch_input = state["ItemBatcher"]["BatchInput"]
        assert batch_input["source"] == source
        assert {k.removesuffix(".$") for k in batch_input} == {
            f.alias or name for name, f in BatchInput.model_fields.items()
        }
    task = listed["ItemProcessor"]["States"]["ClassifyBatch"]
    assert TransientBatchError.__name__ in task["Retry"][0]["ErrorEquals"]
    assert listed["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}


# --- the local interpreter ------------------------------------------------------------------------------


def machine(*states: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"StartAt": states[0][0], "States": dict(states)}


def test_intrinsics_choices_and_result_paths() -> None:
    definition = machine(
        (
            "Settings",
            {
                "Type": "Pass",
                "Parameters": {
                    "range.$": "States.ArrayRange(0, States.MathAdd(States.StringToJson('4'), -1), 1)",
                    "label.$": "States.Format('run {} of {}', $.n, 'x')",
                    "name.$": "$$.Execution.Name",
                },
                "ResultPath": "$.settings",
                "Next": "Choose",
            },
        ),
        (
            "Choose",
            {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            {"Variable": "$.flag", "IsPresent": True},
                            {"Not": {"Variable": "$.flag", "StringEquals": "go"}},
                        ],
                        "Next": "Stop",
                    }
                ],
                "Default": "Done",
            },
        ),
        ("Stop", {"Type": "Fail", "Error": "Stopped", "Cause": "flag"}),
        ("Done", {"Type": "Succeed"}),
    )
    sfn = LocalStepFunctions(boto3.client("s3", region_name="us-east-1"), {})
    run = sfn.start(definition, {"n": 7, "flag": "go"}, name="exec-1")
    assert run.status == "SUCCEEDED"
    assert run.output["settings"] == {"range": [0, 1, 2, 3], "label": "run 7 of x", "name": "exec-1"}
    assert sfn.start(definition, {"n": 1, "flag": "stop"}).error == "Stopped"
    assert sfn.start(definition, {"n": 1}).status == "SUCCEEDED"


def task(retry: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "fn", "Payload.$": "$"},
        "OutputPath": "$.Payload",
        "End": True,
    }
    if retry:
        state["Retry"] = retry
    return state


def test_retry_follows_the_first_matching_retrier_until_its_attempts_are_spent() -> None:
    calls: list[Any] = []

    def flaky(payload: Any) -> Any:
        calls.append(payload)
        if len(calls) <= payload["failures"]:
            raise FunctionError(payload["error"], "try again")
        return {"ok": len(calls)}

    retry = [{"ErrorEquals": ["Transient"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 3}]
    sfn = LocalStepFunctions(boto3.client("s3", region_name="us-east-1"), {"fn": flaky}, retry_scale=0)
    run = sfn.start(machine(("T", task(retry))), {"failures": 2, "error": "Transient"})
    assert run.status == "SUCCEEDED" and run.output == {"ok": 3}
    assert [e["delay_seconds"] for e in run.history if "retry" in e] == [2, 6]
    calls.clear()
    run = sfn.start(machine(("T", task(retry))), {"failures": 3, "error": "Transient"})
    assert run.status == "FAILED" and run.error == "Transient" and len(calls) == 3
    calls.clear()
    run = sfn.start(machine(("T", task(retry))), {"failures": 1, "error": "Permanent"})
    assert run.status == "FAILED" and run.error == "Permanent" and len(calls) == 1


def test_unknown_fields_and_states_are_refused_not_ignored() -> None:
    sfn = LocalStepFunctions(boto3.client("s3", region_name="us-east-1"), {})
    with pytest.raises(UnsupportedDefinition, match="fields"):
        sfn.start(machine(("P", {"Type": "Pass", "End": True, "InputPath": "$.x"})))
    with pytest.raises(UnsupportedDefinition, match="type 'Parallel'"):
        sfn.start(machine(("P", {"Type": "Parallel", "End": True})))
    with pytest.raises(UnsupportedDefinition, match="JSONPath"):
        sfn.start(machine(("P", {"Type": "Pass", "Parameters": {"x.$": "$.a[0]"}, "End": True})))


def distributed(**fields: Any) -> dict[str, Any]:
    return {
        "Type": "Map",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "T",
            "States": {"T": task()},
        },
        "End": True,
        **fields,
    }


def test_a_distributed_map_reads_batches_tolerates_writes_results_and_redrives(s3: Any) -> None:
    s3.create_bucket(Bucket="in-bucket")
    s3.create_bucket(Bucket="out-bucket")
    for i in range(23):
        s3.put_object(Bucket="in-bucket", Key=f"p/{i:02d}", Body=b"x" * i)
    s3.put_object(Bucket="in-bucket", Key="q/other", Body=b"x")
    broken = {"p/07"}

    def count(payload: Any) -> Any:
        keys = {item["Key"] for item in payload["Items"]}
        if keys & broken:
            raise FunctionError("Poison", f"{sorted(keys & broken)}")
        return {"keys": len(keys), "input": payload["BatchInput"]}

    state = distributed(
        ItemReader={
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "Parameters": {"Bucket": "in-bucket", "Prefix": "p/"},
        },
        ItemBatcher={"MaxItemsPerBatch": 5, "BatchInput": {"where": "p", "n.$": "$.n"}},
        MaxConcurrency=3,
        ToleratedFailurePercentage=20,
        ResultWriter={
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "out-bucket", "Prefix": "runs"},
        },
    )
    sfn = LocalStepFunctions(s3, {"fn": count})
    run = sfn.start(machine(("M", state)), {"n": 1})
    (map_run,) = run.map_runs
    assert run.status == "SUCCEEDED" and len(map_run.children) == 5 and len(map_run.failed) == 1
    first = map_run.children[0].input
    assert first["BatchInput"] == {"where": "p", "n": 1} and len(first["Items"]) == 5
    assert set(first["Items"][0]) == {"Etag", "Key", "LastModified", "Size", "StorageClass"}
    written = run.output["ResultWriterDetails"]
    manifest = json.loads(s3.get_object(Bucket="out-bucket", Key=written["Key"])["Body"].read())
    assert [f["Size"] for f in manifest["ResultFiles"]["SUCCEEDED"]] == [4]
    (failed_file,) = manifest["ResultFiles"]["FAILED"]
    failed = json.loads(s3.get_object(Bucket="out-bucket", Key=failed_file["Key"])["Body"].read())
    assert failed[0]["Error"] == "Poison"

    state["ToleratedFailurePercentage"] = 10
    run = sfn.start(machine(("M", state)), {"n": 1})
    assert run.status == "FAILED" and run.error == "States.ExceedToleratedFailureThreshold"
    broken.clear()  # the cause is fixed: a redrive re-runs only the failed child
    redriven = sfn.redrive(run)
    assert redriven.status == "SUCCEEDED" and not redriven.map_runs[0].failed


def test_an_inventory_manifest_is_read_as_s3_writes_it(s3: Any) -> None:
    s3.create_bucket(Bucket="inventory-bucket")
    rows = '"src","a%20b.jpg"\n"src","c.jpg"\n'
    s3.put_object(Bucket="inventory-bucket", Key="inv/data/1.csv.gz", Body=gzip.compress(rows.encode()))
    manifest = {
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key",
        "files": [{"key": "inv/data/1.csv.gz", "size": 1, "MD5checksum": "x"}],
    }
    s3.put_object(Bucket="inventory-bucket", Key="inv/manifest.json", Body=json.dumps(manifest).encode())
    seen: list[Any] = []
    state = distributed(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "MANIFEST"},
            "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
        },
        ItemBatcher={"MaxItemsPerBatch": 10},
    )
    sfn = LocalStepFunctions(s3, {"fn": lambda p: seen.append(p) or {}})
    run = sfn.start(machine(("M", state)), {"bucket": "inventory-bucket", "key": "inv/manifest.json"})
    assert run.status == "SUCCEEDED"
    assert seen[0]["Items"] == [{"Bucket": "src", "Key": "a%20b.jpg"}, {"Bucket": "src", "Key": "c.jpg"}]
    missing = sfn.start(machine(("M", state)), {"bucket": "inventory-bucket", "key": "inv/none.json"})
    assert missing.status == "FAILED" and missing.error == "States.ItemReaderFailed"


@pytest.mark.parametrize(
    ("manifest", "data", "message"),
    [
        ({"fileFormat": "CSV"}, None, "not an S3 Inventory manifest"),
        ({"fileFormat": "ORC", "fileSchema": "Bucket, Key", "destinationBucket": "arn:aws:s3:::inventory-bucket", "files": [{"key": "k"}]}, None, "not an S3 Inventory manifest"),
        ({"fileFormat": "CSV", "fileSchema": "Bucket, Size", "destinationBucket": "arn:aws:s3:::inventory-bucket", "files": [{"key": "inv/d.csv.gz"}]}, None, "has no Key column"),
        (None, gzip.compress(b"\0" * (300 * 1024 * 1024)), "inflates past 268,435,456 bytes"),
        (None, b"not gzip at all", "is not a gzip file"),
        (None, gzip.compress(b'"src","a.jpg","extra"\n'), "row 1 has 3 columns; fileSchema has 2"),
    ],
)  # fmt: skip
def test_a_malformed_or_oversized_inventory_fails_the_state_with_what_is_wrong(
    s3: Any, manifest: dict[str, Any] | None, data: bytes | None, message: str
) -> None:
    s3.create_bucket(Bucket="inventory-bucket")
    s3.put_object(
        Bucket="inventory-bucket", Key="inv/d.csv.gz", Body=data or gzip.compress(b'"src","a.jpg"\n')
    )
    manifest = manifest or {
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key",
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "files": [{"key": "inv/d.csv.gz"}],
    }
    s3.put_object(Bucket="inventory-bucket", Key="inv/manifest.json", Body=json.dumps(manifest).encode())
    state = distributed(
        ItemReader={
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "MANIFEST"},
            "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
        },
        ItemBatcher={"MaxItemsPerBatch": 10},
    )
    sfn = LocalStepFunctions(s3, {"fn": lambda p: {}})
    run = sfn.start(machine(("M", state)), {"bucket": "inventory-bucket", "key": "inv/manifest.json"})
    assert run.status == "FAILED" and run.error == "States.ItemReaderFailed"
    assert message in (run.cause or ""), run.cause
