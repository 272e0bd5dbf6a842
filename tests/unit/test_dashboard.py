"""The dashboard and alarms in template.yaml watch what the functions really publish."""

from __future__ import annotations

import json
import re

from clip_local.paths import REPO_ROOT
from clip_local.template import load_template

RESOURCES = load_template()["Resources"]


def dashboard() -> dict[str, object]:
    body, names = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for placeholder in re.findall(r"\$\{([^}]+)\}", body):
        assert placeholder in names or placeholder in RESOURCES or placeholder.startswith("AWS::"), (
            placeholder
        )
    document: dict[str, object] = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    return document


def published_metrics() -> set[str]:
    """Metric names the upload function's handler emits (literal names and f-string families)."""
    source = (REPO_ROOT / "functions" / "classify_upload" / "app.py").read_text()
    names = set(re.findall(r'name="(\w+)"', source))
    stages = {f"{stage.capitalize()}Ms" for stage in ("download", "decode", "embed", "head", "store")}
    return names | stages | {"Classified", "Failed"}


def test_every_dashboard_metric_is_one_the_functions_publish() -> None:
    widgets = dashboard()["widgets"]
    assert isinstance(widgets, list) and len(widgets) == 7
    used: set[str] = set()
    for widget in widgets:
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], str) and row[0] in ("ClipClassifier", "."):
                used.add(row[1])
            elif isinstance(row[0], dict):
                used |= set(re.findall(r'MetricName="(\w+)"', row[0]["expression"].replace('\\"', '"')))
    assert {"Classified", "Failed", "TopLabel", "Ambiguous", "EmbedMs"} <= used
    assert used <= published_metrics(), used - published_metrics()


def test_alarms_cover_dead_letters_errors_and_throttles_and_reach_the_encrypted_topic() -> None:
    alarms = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert watched == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
    }
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())
    assert RESOURCES["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    assert RESOURCES["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    (statement,) = RESOURCES["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (
        statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        and statement["Action"] == "sns:Publish"
    )


def picture() -> str:
    """The dashboard's layout as text: rows of boxes, each as wide as its widget (24 columns = 96 chars)."""
    widgets = dashboard()["widgets"]
    assert isinstance(widgets, list)
    rows: dict[int, list[dict[str, object]]] = {}
    for widget in widgets:
        rows.setdefault(widget["y"], []).append(widget)
    lines = []
    for y in sorted(rows):
        boxes = sorted(rows[y], key=lambda w: w["x"])
        widths = [4 * int(w["width"]) - 1 for w in boxes]  # type: ignore[call-overload]
        lines.append("+" + "+".join("-" * w for w in widths) + "+")
        titles = [str(w["properties"]["title"]) for w in boxes]  # type: ignore[index]
        lines.append("|" + "|".join(f" {t}".ljust(w)[:w] for t, w in zip(titles, widths, strict=True)) + "|")
        lines.append("|" + "|".join(" " * w for w in widths) + "|")
    lines.append(lines[-3])
    return "\n".join(lines)


def test_the_observability_page_shows_the_dashboards_layout() -> None:
    page = (REPO_ROOT / "docs" / "observability.md").read_text()
    assert f"```text\n{picture()}\n```" in page, picture()
