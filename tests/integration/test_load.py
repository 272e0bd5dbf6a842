"""The load script at CI size: concurrent worker processes, duplicates, two-version keys, shuffled
delivery; every key reconciles to exactly its newest result, nothing lost or dead-lettered."""

from __future__ import annotations

from bench.load_uploads import render, run


def test_load_reconciles_with_nothing_lost() -> None:
    report = run(n=120, workers=2, seed=3, versioned_share=0.1, duplicate_share=0.2)
    print(render(report))
    assert report.ok, render(report)
    assert report.lost == 0 and report.wrong_version == 0 and report.dead_lettered == 0
    assert report.versioned_keys > 0 and report.duplicates_sent > 0
    assert report.outcomes["duplicate"] >= report.duplicates_sent  # each duplicate absorbed, not rewritten
    assert report.classified + sum(report.failed_by_reason.values()) == 120
