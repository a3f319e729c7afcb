"""template.yaml's EventSource, API key, concurrency and buckets, as the stack would hold them.

The template goes through the SAM transform offline, then its conditions are evaluated for the
parameter values under test (tests/descriptors/deployed.py), as CloudFormation would at deploy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.descriptors.deployed import deployed
from tests.descriptors.sam_transform import transformed

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
FUNCTIONS = ("IngestFunction", "InferFunction", "ProduceFunction")
GET_FAILURE_QUEUE_ARN = {"Fn::GetAtt": ["EventFailureQueue", "Arn"]}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The transformed template (CloudFormation, conditions still in it)."""
    return transformed(TEMPLATE)


def of_type(stack: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r["Properties"] for n, r in stack["Resources"].items() if r["Type"] == kind}


def environment(stack: dict[str, Any], function: str) -> dict[str, Any]:
    return stack["Resources"][function]["Properties"]["Environment"]["Variables"]


def statements(stack: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """Every statement of the function role's inline policies."""
    role = stack["Resources"][f"{function}Role"]["Properties"]
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def granted(stack: dict[str, Any], function: str, resource: object) -> set[str]:
    """The actions the function's inline policies allow on `resource`."""
    actions: set[str] = set()
    for statement in statements(stack, function):
        if statement["Resource"] == resource:
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def test_redis_creates_no_stream_queue_or_mapping_and_keeps_the_poller_policy(
    template: dict[str, Any],
) -> None:
    stack = deployed(template)  # EventSource defaults to Redis
    assert not of_type(stack, "AWS::Kinesis::Stream")
    assert not of_type(stack, "AWS::Lambda::EventSourceMapping")
    assert set(of_type(stack, "AWS::SQS::Queue")) == {"ProduceDeadLetterQueue"}
    policy = stack["Resources"]["PollerPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": {"Fn::GetAtt": ["InferFunction", "Arn"]},
        }
    ]
    assert "PollerPolicyArn" in stack["Outputs"]
    assert not {"EventStreamName", "EventQueueUrl", "EventFailureQueueUrl"} & set(stack["Outputs"])
    for function in FUNCTIONS:
        variables = environment(stack, function)
        assert variables["STREAM_BACKEND"] == "redis"
        assert not {"KINESIS_STREAM", "SQS_QUEUE_URL"} & set(variables)
        assert not [s for s in statements(stack, function) if "kinesis:" in json.dumps(s)]


@pytest.mark.parametrize(
    ("overrides", "batch", "window", "parallel", "retries"),
    [
        ({}, "100", "1", "1", "4"),
        (
            {
                "EventBatchSize": "500",
                "EventBatchingWindowS": "5",
                "KinesisParallelizationFactor": "4",
                "EventMaximumRetryAttempts": "2",
            },
            "500",
            "5",
            "4",
            "2",
        ),
    ],
)
def test_kinesis_creates_an_encrypted_stream_mapped_to_infer(
    template: dict[str, Any],
    overrides: dict[str, str],
    batch: str,
    window: str,
    parallel: str,
    retries: str,
) -> None:
    stack = deployed(template, EventSource="Kinesis", **overrides)
    (stream,) = of_type(stack, "AWS::Kinesis::Stream").values()
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    (mapping,) = of_type(stack, "AWS::Lambda::EventSourceMapping").values()
    assert mapping == {
        "FunctionName": {"Ref": "InferFunction"},
        "EventSourceArn": {"Fn::GetAtt": ["EventStream", "Arn"]},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": batch,
        "MaximumBatchingWindowInSeconds": window,
        "ParallelizationFactor": parallel,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": retries,
        "DestinationConfig": {"OnFailure": {"Destination": GET_FAILURE_QUEUE_ARN}},
    }
    assert set(of_type(stack, "AWS::SQS::Queue")) == {"EventFailureQueue", "ProduceDeadLetterQueue"}

    stream_arn = {"Fn::GetAtt": ["EventStream", "Arn"]}
    assert granted(stack, "InferFunction", stream_arn) == {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    }
    assert granted(stack, "InferFunction", GET_FAILURE_QUEUE_ARN) == {"sqs:SendMessage"}
    assert granted(stack, "IngestFunction", stream_arn) == {
        "kinesis:PutRecord",
        "kinesis:PutRecords",
    }
    assert environment(stack, "IngestFunction")["STREAM_BACKEND"] == "kinesis"
    assert environment(stack, "IngestFunction")["KINESIS_STREAM"] == {"Ref": "EventStream"}
    assert "SQS_QUEUE_URL" not in environment(stack, "IngestFunction")
    assert "PollerPolicy" not in stack["Resources"]
    assert stack["Outputs"]["EventStreamName"]["Value"] == {"Ref": "EventStream"}
    assert stack["Outputs"]["EventFailureQueueUrl"]["Value"] == {"Ref": "EventFailureQueue"}
    assert not {"PollerPolicyArn", "EventQueueUrl"} & set(stack["Outputs"])


# Every retry count the parameter allows: CloudFormation has no +, the template looks it up.
@pytest.mark.parametrize(("retries", "receives"), [(str(n), str(n + 1)) for n in range(11)])
def test_sqs_creates_a_queue_with_a_dead_letter_queue_mapped_to_infer(
    template: dict[str, Any], retries: str, receives: str
) -> None:
    stack = deployed(
        template,
        EventSource="SQS",
        EventMaximumRetryAttempts=retries,
        EventBatchSize="50",
        InferReservedConcurrency="7",
    )
    assert template["Parameters"]["EventMaximumRetryAttempts"]["MaxValue"] == 10  # as parametrized
    queues = of_type(stack, "AWS::SQS::Queue")
    assert set(queues) == {"EventQueue", "EventFailureQueue", "ProduceDeadLetterQueue"}
    queue = queues["EventQueue"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": GET_FAILURE_QUEUE_ARN,
        "maxReceiveCount": receives,
    }
    # AWS's advice: 6 times the function's timeout plus the batching window, at its largest.
    timeout = stack["Resources"]["InferFunction"]["Properties"]["Timeout"]
    largest_window = template["Parameters"]["EventBatchingWindowS"]["MaxValue"]
    assert queue["VisibilityTimeout"] >= 6 * timeout + largest_window
    (mapping,) = of_type(stack, "AWS::Lambda::EventSourceMapping").values()
    assert mapping == {
        "FunctionName": {"Ref": "InferFunction"},
        "EventSourceArn": {"Fn::GetAtt": ["EventQueue", "Arn"]},
        "BatchSize": "50",
        "MaximumBatchingWindowInSeconds": "1",
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": "7"},
    }
    assert not of_type(stack, "AWS::Kinesis::Stream")

    queue_arn = {"Fn::GetAtt": ["EventQueue", "Arn"]}
    assert granted(stack, "InferFunction", queue_arn) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
    assert granted(stack, "IngestFunction", queue_arn) == {"sqs:SendMessage"}
    assert environment(stack, "IngestFunction")["STREAM_BACKEND"] == "sqs"
    assert environment(stack, "IngestFunction")["SQS_QUEUE_URL"] == {"Ref": "EventQueue"}
    assert "KINESIS_STREAM" not in environment(stack, "IngestFunction")
    assert "PollerPolicy" not in stack["Resources"]
    assert stack["Outputs"]["EventQueueUrl"]["Value"] == {"Ref": "EventQueue"}
    assert stack["Outputs"]["EventFailureQueueUrl"]["Value"] == {"Ref": "EventFailureQueue"}


@pytest.mark.parametrize("source", ["Redis", "Kinesis", "SQS"])
def test_every_queue_is_encrypted(template: dict[str, Any], source: str) -> None:
    queues = of_type(deployed(template, EventSource=source), "AWS::SQS::Queue")
    assert queues
    assert {q.get("KmsMasterKeyId") for q in queues.values()} == {"alias/aws/sqs"}


def test_the_api_key_is_read_from_ssm_by_exactly_its_parameter(template: dict[str, Any]) -> None:
    name = "/streamfn/ingest-api-key"
    stack = deployed(template, IngestApiKeyParameter=name)
    policy = stack["Resources"]["ReadApiKeyPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                "parameter/streamfn/ingest-api-key"
            },
        }
    ]
    for function in ("IngestFunction", "ProduceFunction"):
        assert environment(stack, function)["INGEST_API_KEY_PARAMETER"] == name
        role = stack["Resources"][f"{function}Role"]["Properties"]
        assert {"Ref": "ReadApiKeyPolicy"} in role["ManagedPolicyArns"]
    # The infer function never sees the key.
    infer_role = stack["Resources"]["InferFunctionRole"]["Properties"]
    assert {"Ref": "ReadApiKeyPolicy"} not in infer_role["ManagedPolicyArns"]
    for function in FUNCTIONS:
        assert "INGEST_API_KEY" not in environment(stack, function)


def test_the_feedback_key_is_its_own_parameter_read_by_ingest_alone(
    template: dict[str, Any],
) -> None:
    name = "/streamfn/feedback-api-key"
    stack = deployed(template, IngestApiKeyParameter="/streamfn/ingest-api-key",
                     FeedbackApiKeyParameter=name)  # fmt: skip
    assert environment(stack, "IngestFunction")["FEEDBACK_API_KEY_PARAMETER"] == name
    policy = stack["Resources"]["ReadFeedbackKeyPolicy"]["Properties"]["PolicyDocument"]
    [statement] = policy["Statement"]
    assert statement["Action"] == "ssm:GetParameter"
    assert statement["Resource"]["Fn::Sub"].endswith(f"parameter{name}")
    for function in FUNCTIONS:
        role = stack["Resources"][f"{function}Role"]["Properties"]
        held = {"Ref": "ReadFeedbackKeyPolicy"} in role["ManagedPolicyArns"]
        assert held == (function == "IngestFunction"), function
        assert ("FEEDBACK_API_KEY_PARAMETER" in environment(stack, function)) == held
    without = deployed(template, IngestApiKeyParameter="/streamfn/ingest-api-key")
    assert "ReadFeedbackKeyPolicy" not in without["Resources"]


def test_the_key_parameter_has_no_default_and_none_says_open_loudly(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["IngestApiKeyParameter"]
    assert "Default" not in parameter  # the stack must be told: a key, or none on purpose
    allowed = re.compile(parameter["AllowedPattern"])
    assert not allowed.fullmatch("")
    assert allowed.fullmatch("none")
    assert allowed.fullmatch("/streamfn/ingest-api-key")
    keyed = deployed(template, IngestApiKeyParameter="/streamfn/ingest-api-key")
    assert environment(keyed, "IngestFunction")["INGEST_AUTH"] == "key"
    assert keyed["Outputs"]["IngestAuth"]["Value"].startswith("key: ")
    stack = deployed(template, IngestApiKeyParameter="none")
    assert stack["Outputs"]["IngestAuth"]["Value"].startswith("OPEN: ")
    assert environment(stack, "IngestFunction")["INGEST_AUTH"] == "none"
    assert "ReadApiKeyPolicy" not in stack["Resources"]
    for function in FUNCTIONS:
        assert "INGEST_API_KEY_PARAMETER" not in environment(stack, function)
        role = stack["Resources"][f"{function}Role"]["Properties"]
        assert {"Ref": "ReadApiKeyPolicy"} not in role["ManagedPolicyArns"]


def test_every_function_has_its_reserved_concurrency(template: dict[str, Any]) -> None:
    stack = deployed(
        template,
        IngestReservedConcurrency="30",
        InferReservedConcurrency="12",
        ProduceReservedConcurrency="2",
    )
    reserved = {
        f: stack["Resources"][f]["Properties"]["ReservedConcurrentExecutions"] for f in FUNCTIONS
    }
    assert reserved == {"IngestFunction": "30", "InferFunction": "12", "ProduceFunction": "2"}


def test_the_producer_sends_failed_runs_to_its_dead_letter_queue(template: dict[str, Any]) -> None:
    stack = deployed(template)
    produce = stack["Resources"]["ProduceFunction"]["Properties"]
    queue_arn = {"Fn::GetAtt": ["ProduceDeadLetterQueue", "Arn"]}
    assert produce["DeadLetterConfig"] == {"TargetArn": queue_arn}
    assert granted(stack, "ProduceFunction", queue_arn) == {"sqs:SendMessage"}


def test_the_predictions_bucket_is_versioned_and_logs_to_a_private_bucket(
    template: dict[str, Any],
) -> None:
    buckets = of_type(deployed(template), "AWS::S3::Bucket")
    predictions, logs = buckets["PredictionsBucket"], buckets["AccessLogsBucket"]
    assert predictions["VersioningConfiguration"] == {"Status": "Enabled"}
    assert predictions["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": "AccessLogsBucket"
    }
    assert logs["PublicAccessBlockConfiguration"] == predictions["PublicAccessBlockConfiguration"]
    assert all(logs["PublicAccessBlockConfiguration"].values())
    assert logs["BucketEncryption"] == predictions["BucketEncryption"]
    policy = of_type(deployed(template), "AWS::S3::BucketPolicy")["AccessLogsBucketPolicy"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"] == {
        "aws:SourceArn": {"Fn::GetAtt": ["PredictionsBucket", "Arn"]}
    }
