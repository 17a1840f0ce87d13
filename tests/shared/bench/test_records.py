"""Benchmark records: JSON per run, and BENCHMARKS.md generated from each section's latest."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from chronotick.bench.records import NOTES_DIR, Record, latest_records, load_record, render, save_record, write_record
from chronotick.bench.report import headline_figures


def _record(section: str, date: str, markdown: str = "", commit: str = "abc1234") -> Record:
    return Record(
        section=section,
        title=f"Title of {section}",
        command="python benchmarks/example.py --write BENCHMARKS.md",
        commit=commit,
        dirty=False,
        date=date,
        machine="2 cores (test), 4 GiB, Python 3.11",
        markdown=markdown or f"### Title of {section}\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        figures={"p50_ms": 6.1},
    )


def test_a_record_round_trips_through_its_json_file(tmp_path: Path) -> None:
    record = _record("accuracy:scion", "2026-12-01T10:00:00Z")
    path = save_record(tmp_path, record)
    assert path.parent.name == "accuracy--scion"
    assert json.loads(path.read_text())["figures"] == {"p50_ms": 6.1}
    assert load_record(path) == record


def test_the_generator_picks_each_sections_latest_record(tmp_path: Path) -> None:
    save_record(tmp_path, _record("gateway_speed", "2026-12-01T10:00:00Z", commit="old0000"))
    save_record(tmp_path, _record("gateway_speed", "2026-12-03T10:00:00Z", commit="new0000"))
    save_record(tmp_path, _record("gateway_speed", "2026-12-02T10:00:00Z", commit="mid0000"))
    save_record(tmp_path, _record("warm_clocks", "2026-11-01T10:00:00Z"))
    latest = {record.section: record.commit for _, record in latest_records(tmp_path)}
    assert latest == {"gateway_speed": "new0000", "warm_clocks": "abc1234"}
    document = render(tmp_path)
    assert "new0000" in document and "old0000" not in document and "mid0000" not in document


def test_the_document_has_a_contents_entry_per_section_and_the_targets(tmp_path: Path) -> None:
    (tmp_path / NOTES_DIR).mkdir(parents=True)
    (tmp_path / NOTES_DIR / "targets.md").write_text("## Targets at a glance\n\n| target | met |\n")
    (tmp_path / NOTES_DIR / "why.md").write_text("### Why it is slow\n\ntext\n")
    for section in ("a", "b", "c"):
        save_record(tmp_path, _record(section, "2026-12-01T10:00:00Z"))
    document = render(tmp_path)
    contents = document.split("## Contents", 1)[1].split("\n## ", 1)[0]
    for section in ("a", "b", "c"):
        assert f"- [Title of {section}](#title-of-{section})" in contents
        assert f"\n## Title of {section}\n" in document
    assert "[Why it is slow](benchmarks/notes/why.md)" in contents
    assert document.index("## Targets at a glance") < document.index("## Contents")


def test_an_accuracy_section_is_summarised_by_its_fused_table(tmp_path: Path) -> None:
    markdown = (
        "## Accuracy: scion\n\nCommand: `x`\n\n"
        "### Fused vs best classical\n\n| fused | best |\n|---|---|\n| 0.9 | 1 |\n\n"
        "### Overall\n\n| per-file | row |\n|---|---|\n| hidden | 2 |"
    )
    save_record(tmp_path, dataclasses.replace(_record("accuracy:scion", "2026-12-01T10:00:00Z"), markdown=markdown))
    document = render(tmp_path)
    assert "| 0.9 | 1 |" in document and "hidden" not in document


def test_rendering_twice_gives_the_same_document(tmp_path: Path) -> None:
    save_record(tmp_path, _record("a", "2026-12-01T10:00:00Z"))
    assert render(tmp_path) == render(tmp_path)


def test_a_scripts_write_records_the_run_and_regenerates_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["benchmarks/example.py", "--write", "BENCHMARKS.md"])
    markdown_file = tmp_path / "BENCHMARKS.md"
    path = write_record(markdown_file, "example", "### An example run\n\n| p50 ms |\n|---|\n| 6.1 |", {"p50_ms": 6.1})
    record = load_record(path)
    assert path.is_relative_to(tmp_path / "benchmarks" / "results" / "example")
    assert record.command == "python benchmarks/example.py --write BENCHMARKS.md"
    assert record.figures == {"p50_ms": 6.1} and record.title == "An example run"
    document = markdown_file.read_text()
    assert "## An example run" in document and "| 6.1 |" in document
    assert path.relative_to(tmp_path).as_posix() in document


def test_an_accuracy_run_records_its_pooled_figures_without_nan() -> None:
    results = {
        "overall": {
            "metrics": {"fused": {"10": {"mae_us": 0.9}, "60": {"mae_us": float("nan")}}},
            "comparison": {
                "10": {"fused_over_best_classical": 0.95},
                "60": {"fused_over_best_classical": float("nan")},
            },
        }
    }
    assert headline_figures(results) == {"fused_mae_us_10s": 0.9, "fused_over_best_classical_10s": 0.95}
