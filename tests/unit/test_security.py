"""Security properties read from template.yaml and the source, so a change that weakens them fails."""

from __future__ import annotations

import re
from typing import Any

import pytest

from clip_local.paths import REPO_ROOT
from clip_local.template import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
PACKAGE = REPO_ROOT / "layers" / "shared" / "clip_classifier"

#: What a Distributed Map's ResultWriter needs on its prefix (multipart uploads for large results).
RESULT_WRITER = {"s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"}
EXPECTED_ACTIONS = {
    "ScoreFeaturesFunction": {
        "ResultsReadWrite": {"dynamodb:GetItem", "dynamodb:PutItem"},
        "ReadHeadWeights": {"s3:GetObject"},
    },
    # Signed-in reviewers (Cognito): the queue's index, labels on existing results, links to uploads.
    "ReviewLabelsFunction": {
        "ReadReviewQueue": {"dynamodb:Query"},
        "LabelResults": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "ReadHeadWeights": {"s3:GetObject"},
        "LinkQueuedUploads": {"s3:GetObject", "s3:GetObjectVersion"},
        "AnnounceLabels": {"events:PutEvents"},
    },
    "ClassifyUploadFunction": {
        "ReadUploadsUnderPrefix": {"s3:GetObject", "s3:GetObjectVersion"},
        "WriteResults": {"dynamodb:PutItem"},
        "ReadHeadWeights": {"s3:GetObject"},
        "SendFailedEventsToDeadLetterQueue": {"sqs:SendMessage"},
        "AnnounceResults": {"events:PutEvents"},
    },
    "BackfillBatchFunction": {
        "ReadUploadsUnderPrefix": {"s3:GetObject", "s3:GetObjectVersion"},
        "ReadAndWriteResults": {"dynamodb:BatchGetItem", "dynamodb:PutItem"},
        "ReadHeadWeights": {"s3:GetObject"},
    },
    "RescoreResultsFunction": {
        "ScanAndUpdateResults": {"dynamodb:Scan", "dynamodb:UpdateItem"},
        "ReadHeadWeights": {"s3:GetObject"},
        "WriteBackfillLists": {"s3:PutObject", "s3:GetObject"},
        "ListBackfillLists": {"s3:ListBucket"},
    },
    "BackfillStateMachine": {
        "InvokeBatchFunction": {"lambda:InvokeFunction"},
        "ListUploadsUnderPrefix": {"s3:ListBucket"},
        "ReadManifests": {"s3:GetObject"},
        "WriteRunResults": RESULT_WRITER,
        "RunMapChildren": {"states:StartExecution"},
        "ManageMapRuns": {"states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"},
    },
    "RescoreStateMachine": {
        "InvokeRescoreFunction": {"lambda:InvokeFunction"},
        "WriteRunResults": RESULT_WRITER,
        "RunMapChildren": {"states:StartExecution"},
        "ManageMapRuns": {"states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"},
    },
    "EvaluateHeadsFunction": {
        "ScanResults": {"dynamodb:Scan"},
        "ReadRegisteredHeads": {"s3:GetObject"},
        "WriteEvaluationReports": {"s3:PutObject", "s3:GetObject"},
        "ListEvaluationParts": {"s3:ListBucket"},
        "RecordEvaluations": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    },
    "EvaluateStateMachine": {
        "InvokeEvaluateFunction": {"lambda:InvokeFunction"},
        "WriteRunResults": RESULT_WRITER,
        "RunMapChildren": {"states:StartExecution"},
        "ManageMapRuns": {"states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"},
    },
    # People operating the stack with their own IAM identity (clip-classifier heads ...): never the API key.
    "HeadsOperatorPolicy": {
        "FindTheStack": {"cloudformation:DescribeStacks"},
        "RegisterAndActivateHeads": {"s3:PutObject", "s3:GetObject"},
        "HeadRecords": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"},
        "ReadEvaluationReports": {"s3:GetObject"},
        "ReadTheReviewQueue": {"dynamodb:Query"},
        "LabelResultsAndExportLabels": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan"},
        "AnnounceLabelsAndActivations": {"events:PutEvents"},
        "StartJobs": {"states:StartExecution"},
        "FollowJobs": {"states:DescribeExecution"},
    },
}

#: The IAM action each boto3 call of the package needs.
CALL_TO_ACTION = {
    "head_object": "s3:GetObject",
    "get_object": "s3:GetObject",
    # A presigned GET is made locally; whoever opens it acts with the signer's s3:GetObject(Version).
    "generate_presigned_url": "s3:GetObject",
    "put_item": "dynamodb:PutItem",
    "get_item": "dynamodb:GetItem",
    # IAM authorises each action inside a transaction; the API's transactions only Put.
    "transact_write_items": "dynamodb:PutItem",
    "batch_get_item": "dynamodb:BatchGetItem",
    "scan": "dynamodb:Scan",
    "query": "dynamodb:Query",
    "put_events": "events:PutEvents",
    "update_item": "dynamodb:UpdateItem",
    "put_object": "s3:PutObject",
    # Paginated: get_paginator("list_objects_v2").
    "list_objects_v2": "s3:ListBucket",
    # A server-side copy reads the source and writes the target: both are granted where it runs.
    "copy_object": "s3:PutObject",
    "start_execution": "states:StartExecution",
    "describe_execution": "states:DescribeExecution",
    "describe_stacks": "cloudformation:DescribeStacks",
    # Needs no permission: every identity may ask who it is.
    "get_caller_identity": "",
}


def statements(function: str) -> list[dict[str, Any]]:
    if RESOURCES[function]["Type"] == "AWS::IAM::ManagedPolicy":
        statements: list[dict[str, Any]] = RESOURCES[function]["Properties"]["PolicyDocument"]["Statement"]
        return statements
    policies = RESOURCES[function]["Properties"]["Policies"]
    assert all(isinstance(p, dict) and "Statement" in p for p in policies), (
        "inline statements only, no templates"
    )
    return [s for p in policies for s in p["Statement"]]


@pytest.mark.parametrize("function", sorted(EXPECTED_ACTIONS))
def test_each_function_has_exactly_the_expected_actions(function: str) -> None:
    got = {s["Sid"]: set(s["Action"]) for s in statements(function)}
    assert got == EXPECTED_ACTIONS[function]
    for statement in statements(function):
        assert statement["Effect"] == "Allow"
        assert "*" not in str(statement["Action"])
        assert statement["Resource"] != "*"


def test_resources_are_scoped() -> None:
    score = {s["Sid"]: s["Resource"] for s in statements("ScoreFeaturesFunction")}
    upload = {s["Sid"]: s["Resource"] for s in statements("ClassifyUploadFunction")}
    assert score["ResultsReadWrite"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert upload["WriteResults"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert upload["SendFailedEventsToDeadLetterQueue"] == {"Fn::GetAtt": ["UploadDeadLetterQueue", "Arn"]}
    prefix_arn = upload["ReadUploadsUnderPrefix"]["Fn::Join"][1]
    assert {"Ref": "UploadPrefix"} in prefix_arn and prefix_arn[-1] == "*"  # only keys under the prefix
    assert str(score["ReadHeadWeights"]) == str(upload["ReadHeadWeights"])  # the same one object


def test_the_code_needs_no_action_the_template_does_not_grant() -> None:
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    calls = set(re.findall(r"\.(" + "|".join(CALL_TO_ACTION) + r")\(", source))
    calls |= set(re.findall(r"get_paginator\(\"(\w+)\"\)", source))
    other = set(re.findall(r"client\(\)\.(\w+)\(|self\._?s3\.(\w+)\(|self\.client\.(\w+)\(", source))
    assert calls, "the scan found the SDK calls"
    granted = set().union(*(a for f in EXPECTED_ACTIONS.values() for a in f.values())) | {""}
    assert {CALL_TO_ACTION[c] for c in calls} <= granted
    assert {name for group in other for name in group if name} - {"get_paginator"} <= set(CALL_TO_ACTION)


def test_upload_bucket_is_private_encrypted_and_tls_only() -> None:
    props = RESOURCES["UploadBucket"]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    (deny,) = RESOURCES["UploadBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_table_queue_and_api_protections() -> None:
    table = RESOURCES["ResultsTable"]["Properties"]
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert RESOURCES["UploadDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    auth = RESOURCES["ScoreApi"]["Properties"]["Auth"]
    assert auth["ApiKeyRequired"] is True and auth["UsagePlan"]["CreateUsagePlan"] == "PER_API"
    assert "Throttle" in auth["UsagePlan"] and "Quota" in auth["UsagePlan"]


#: The reviewers' routes: a person's Cognito ID token, never the scoring key.
REVIEW_ROUTES = {
    ("GET", "/v1/review"),
    ("PUT", "/v1/classifications/{pictureId}/label"),
    ("DELETE", "/v1/classifications/{pictureId}/label"),
}


def test_every_api_route_requires_the_key_or_a_reviewer_and_only_preflights_neither() -> None:
    keyed, reviewers, open_ = set(), set(), 0
    for logical_id, res in RESOURCES.items():
        for event in res.get("Properties", {}).get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            props = event["Properties"]
            auth = props.get("Auth", {})
            route = (props["Method"].upper(), props["Path"])
            assert props["RestApiId"] == {"Ref": "ScoreApi"}, logical_id
            if auth.get("ApiKeyRequired", True) is True:
                assert "Authorizer" not in auth, route
                keyed.add(route)
            elif auth.get("Authorizer") == "ReviewerPool":
                assert logical_id == "ReviewLabelsFunction", route
                reviewers.add(route)
            else:  # a CORS preflight: the function answers it with headers only, never data
                assert props["Method"] == "OPTIONS", (logical_id, props)
                open_ += 1
    assert keyed == {("POST", "/v1/scores"), ("GET", "/v1/classifications/{pictureId}"), ("GET", "/v1/model")}
    assert reviewers == REVIEW_ROUTES and open_ == 5
    api = RESOURCES["ScoreApi"]["Properties"]["Auth"]
    assert "DefaultAuthorizer" not in api  # no route gets the authorizer without naming it
    assert api["Authorizers"] == {
        "ReviewerPool": {
            "UserPoolArn": {"Fn::GetAtt": ["ReviewerUserPool", "Arn"]},
            "Identity": {"Header": "Authorization"},
        }
    }
    document = (REPO_ROOT / "infra" / "openapi.json").read_text()
    assert '"security": [' in document and '"x-api-key"' in document


def test_reviewers_are_invited_people_with_short_lived_tokens() -> None:
    pool = RESOURCES["ReviewerUserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # nobody signs themselves up
    policy = pool["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12 and policy["RequireNumbers"] and policy["RequireUppercase"]
    client = RESOURCES["ReviewerUserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False  # a page cannot keep one
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert "email" not in client["WriteAttributes"]  # labeledBy names the reviewer by it
    assert client["IdTokenValidity"] <= 60 and client["TokenValidityUnits"]["IdToken"] == "minutes"
    review = {s["Sid"]: s["Resource"] for s in statements("ReviewLabelsFunction")}
    assert review["ReadReviewQueue"] == {"Fn::Sub": "${ResultsTable.Arn}/index/ReviewQueue"}
    assert review["LabelResults"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert review["LinkQueuedUploads"] == {"Fn::Sub": "${UploadBucket.Arn}/${UploadPrefix}*"}
    unauthorized = RESOURCES["ScoreApi"]["Properties"]["GatewayResponses"]["UNAUTHORIZED"]
    assert unauthorized["StatusCode"] == 401


def test_checkov_skips_all_say_why() -> None:
    for logical_id, res in RESOURCES.items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 30, (logical_id, skip["id"])


def test_torch_load_is_only_ever_weights_only() -> None:
    for path in [*REPO_ROOT.glob("weights/*.py"), *PACKAGE.glob("*.py"), *REPO_ROOT.glob("bench/*.py")]:
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, (path, call)


def test_no_secrets_in_the_repository() -> None:
    pattern = re.compile(r"(AKIA[0-9A-Z]{16}|aws_secret_access_key\s*=\s*['\"][A-Za-z0-9/+]{40})")
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    names = [
        n
        for n in tracked.stdout.splitlines()
        if n.endswith((".py", ".yaml", ".toml", ".json", ".md", ".txt"))
    ]
    assert names
    for name in names:
        assert not pattern.search((REPO_ROOT / name).read_text(errors="ignore")), name


def test_backfill_and_rescore_resources_are_scoped() -> None:
    backfill = {s["Sid"]: s for s in statements("BackfillBatchFunction")}
    rescore = {s["Sid"]: s for s in statements("RescoreResultsFunction")}
    upload = {s["Sid"]: s for s in statements("ClassifyUploadFunction")}
    # The batch function reads what the upload function reads, no more.
    assert backfill["ReadUploadsUnderPrefix"]["Resource"] == upload["ReadUploadsUnderPrefix"]["Resource"]
    assert backfill["ReadAndWriteResults"]["Resource"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert rescore["ScanAndUpdateResults"]["Resource"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert rescore["WriteBackfillLists"]["Resource"] == {"Fn::Sub": "${ReportsBucket.Arn}/rescore/*"}
    assert rescore["ListBackfillLists"]["Condition"] == {"StringLike": {"s3:prefix": "rescore/*"}}

    for machine, function, prefix in (
        ("BackfillStateMachine", "BackfillBatchFunction", "backfill"),
        ("RescoreStateMachine", "RescoreResultsFunction", "rescore"),
        ("EvaluateStateMachine", "EvaluateHeadsFunction", "evaluate"),
    ):
        grants = {s["Sid"]: s for s in statements(machine)}
        invoke = next(s for s in grants.values() if s["Action"] == ["lambda:InvokeFunction"])
        assert invoke["Resource"] == {"Fn::GetAtt": [function, "Arn"]}  # its own function only
        name = f"${{AWS::StackName}}-{prefix}"
        assert RESOURCES[machine]["Properties"]["Name"] == {"Fn::Sub": name}
        assert grants["RunMapChildren"]["Resource"]["Fn::Sub"].endswith(f":stateMachine:{name}")
        assert grants["ManageMapRuns"]["Resource"]["Fn::Sub"].endswith(f":execution:{name}*")
        assert grants["WriteRunResults"]["Resource"]["Fn::Sub"].startswith("${ReportsBucket.Arn}/")
    listing = {s["Sid"]: s for s in statements("BackfillStateMachine")}["ListUploadsUnderPrefix"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${UploadPrefix}*"}}}
    reports = RESOURCES["ReportsBucket"]["Properties"]
    assert reports["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert reports["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 30
    (deny,) = RESOURCES["ReportsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # The opt-in trigger may only start the rescore.
    role = RESOURCES["NewWeightsRuleRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert role == [
        {
            "Sid": "StartRescore",
            "Effect": "Allow",
            "Action": ["states:StartExecution"],
            "Resource": {"Ref": "RescoreStateMachine"},
        }
    ]


def test_heads_resources_are_scoped() -> None:
    """The functions read only the active head; the evaluation reads registered heads and writes reports
    but no result; operators act through their own IAM policy, which the API key never reaches."""
    for function in (
        "ScoreFeaturesFunction",
        "ClassifyUploadFunction",
        "BackfillBatchFunction",
        "RescoreResultsFunction",
    ):
        grants = {s["Sid"]: s for s in statements(function)}
        assert grants["ReadHeadWeights"]["Resource"] == {"Fn::Sub": "${HeadsBucket.Arn}/active/head.json"}
    evaluate = {s["Sid"]: s for s in statements("EvaluateHeadsFunction")}
    assert evaluate["ScanResults"]["Resource"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}  # no write to it
    assert evaluate["ReadRegisteredHeads"]["Resource"] == {"Fn::Sub": "${HeadsBucket.Arn}/heads/*"}
    assert evaluate["WriteEvaluationReports"]["Resource"] == {"Fn::Sub": "${ReportsBucket.Arn}/evaluations/*"}
    assert evaluate["ListEvaluationParts"]["Condition"] == {"StringLike": {"s3:prefix": "evaluations/*"}}
    assert evaluate["RecordEvaluations"]["Resource"] == {"Fn::GetAtt": ["HeadsTable", "Arn"]}
    operator = {s["Sid"]: s for s in statements("HeadsOperatorPolicy")}
    assert operator["HeadRecords"]["Resource"] == {"Fn::GetAtt": ["HeadsTable", "Arn"]}
    assert operator["StartJobs"]["Resource"] == [
        {"Ref": "EvaluateStateMachine"},
        {"Ref": "RescoreStateMachine"},
    ]
    assert operator["FindTheStack"]["Resource"] == {"Ref": "AWS::StackId"}
    assert all(
        str(r).startswith("{'Fn::Sub': '${HeadsBucket.Arn}/")
        for r in operator["RegisterAndActivateHeads"]["Resource"]
    )
    heads = RESOURCES["HeadsBucket"]["Properties"]
    assert heads["VersioningConfiguration"] == {"Status": "Enabled"}  # every activation is kept
    assert heads["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    (deny,) = RESOURCES["HeadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    table = RESOURCES["HeadsTable"]["Properties"]
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
