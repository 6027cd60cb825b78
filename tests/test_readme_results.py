"""README.md's result tables agree with benchmarks/results/*.json (benchmarks/report.py generates them)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "report.py"


def load_report():
    spec = importlib.util.spec_from_file_location("benchmarks_report", REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = load_report()


def test_readme_tables_match_results_json():
    diff = report.check(ROOT / "README.md", ROOT / "benchmarks" / "results")
    assert diff == "", "README result tables differ from benchmarks/results; run benchmarks/report.py --write\n" + diff


def test_readme_has_a_block_for_every_results_table():
    names = [m.group("name") for m in report.BLOCK.finditer((ROOT / "README.md").read_text())]
    assert sorted(names) == sorted(report.TABLES), names  # each table once, none unknown


def accuracy_row(median_ms: float, within_50ms: float) -> dict:
    return {
        "median_abs_ms": median_ms,
        "within_20ms": 0.1,
        "within_50ms": within_50ms,
        "within_100ms": 0.5,
        "within_200ms": 0.9,
    }


def made_up_throughput() -> dict:
    return {
        "machine": {"when": "2026-01-02 03:04:05", "commit": "0123456789abcdef+dirty"},
        "rows": [
            {
                "contender": "openai find_alignment loop",
                "median_s": 40.0,
                "speedup": 1.0,
                "realtime_factor": 5.0,
                "accuracy": accuracy_row(100.04, 0.25),
            },
            {
                "contender": "whisper-align, packed windows",
                "median_s": 4.04,
                "speedup": 9.9009,
                "realtime_factor": 49.5,
                "accuracy": accuracy_row(120.0, 0.5),
            },
            {
                "contender": "something new",
                "median_s": 50.0,
                "speedup": 0.8,
                "realtime_factor": 4.0,
                "accuracy": accuracy_row(90.0, 0.125),
            },
        ],
    }


def test_throughput_formatter_on_made_up_json():
    table = report.throughput(made_up_throughput())
    assert table.splitlines() == [
        "| aligner | median s | × real time | speed-up | median error ms | ≤50 ms |",
        "|---|---:|---:|---:|---:|---:|",
        "| openai-whisper `find_alignment` loop | 40.0 | 5.0 | 1.00× | 100.0 | 25.0% |",
        # bold where the packed row is the best of the table: not its median error (90.0 is lower)
        (
            "| **ours, clips packed into windows** (`align --manifest`) | **4.0** | **49.5** | **9.90×** | 120.0 "
            "| **50.0%** |"
        ),
        "| something new | 50.0 | 4.0 | 0.80× | 90.0 | 12.5% |",
    ]
    note = report.source_note("throughput", made_up_throughput())
    assert note == "_From `benchmarks/results/throughput.json` (commit 0123456+dirty / run 2026-01-02 03:04)_"
    assert "commit not recorded" in report.source_note("throughput", {"machine": {"when": "2026-01-02 03:04:05"}})


def test_speed_rows_of_a_run_before_the_word_rules_default_are_relabelled():
    def rows(name, without, with_):
        return [
            {"contender": name, "word_timestamps": wt, "median_s": s, "speedup_vs_openai": 10.0 / s, "seconds": [s] * 3}
            for wt, s in ((False, without), (True, with_))
        ]

    old_names = ["openai-whisper", "whisper-align", "whisper-align, seek_to_last_word=False"]
    data = {
        "args": {"device": "cuda"},
        "results": {
            "m": {
                "rows": rows(old_names[0], 10.0, 10.0) + rows(old_names[1], 10.0, 8.0) + rows(old_names[2], 5.0, 20.0),
                "word_timestamps_overhead": dict(zip(old_names, (0.0, -0.2, 3.0))),
            }
        },
    }
    lines = report.transcription_speed(data, seconds_decimals=2).splitlines()
    # the run's "seek_to_last_word=False" row is today's default; its plain "whisper-align" ran openai's rule
    assert lines[3] == "| **ours, float16** (the default) | **5.00 s (2.00×)** | **20.00 s (0.50×)** | **+300.0%** |"
    assert lines[4] == (
        "| ours, float16, `seek_to_last_word=True` (openai's window rule) | 10.00 s (1.00×) | 8.00 s (1.25×) | -20.0% |"
    )
    assert len(lines) == 5


def make_readme_copy(tmp_path: Path, name: str = "throughput") -> tuple[Path, Path]:
    results = tmp_path / "results"
    results.mkdir()
    (results / f"{name}.json").write_text(json.dumps(made_up_throughput()))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nprose 1.00×\n\n<!-- results: {name} -->\nstale\n<!-- /results -->\n\nend\n")
    return readme, results


def test_check_fails_with_a_diff_and_write_fixes_the_block(tmp_path):
    readme, results = make_readme_copy(tmp_path)
    args = [sys.executable, str(REPORT), "--readme", str(readme), "--results", str(results)]
    checked = subprocess.run(args + ["--check"], check=False, capture_output=True, text=True)
    assert checked.returncode == 1
    assert "-stale" in checked.stdout and "+| openai-whisper `find_alignment` loop | 40.0 |" in checked.stdout

    assert subprocess.run(args + ["--write"], check=False, capture_output=True, text=True).returncode == 0
    text = readme.read_text()
    assert text.startswith("# title\n\nprose 1.00×\n\n<!-- results: throughput -->\n| aligner |")
    assert text.endswith("(commit 0123456+dirty / run 2026-01-02 03:04)_\n<!-- /results -->\n\nend\n")
    assert report.check(readme, results) == ""


def test_a_changed_figure_is_caught(tmp_path):
    readme, results = make_readme_copy(tmp_path)
    readme.write_text(report.regenerate(readme.read_text(), results).replace("| 40.0 |", "| 41.0 |"))
    diff = report.check(readme, results)
    assert "-| openai-whisper `find_alignment` loop | 41.0 |" in diff
    assert "+| openai-whisper `find_alignment` loop | 40.0 |" in diff


def test_an_unknown_block_name_is_a_typed_error(tmp_path):
    readme, results = make_readme_copy(tmp_path, name="throughputs")
    with pytest.raises(report.ReportError, match="'throughputs' has no generator"):
        report.check(readme, results)


@pytest.mark.parametrize(
    "readme_text, json_text, message",
    [
        ("<!-- results: longform -->\n<!-- /results -->\n", None, "longform.json not found"),
        ("<!-- results: throughput -->\nno end marker\n", None, "no matching <!-- /results -->"),
        (
            "<!-- results: throughput -->\n<!-- /results -->\n",
            '{"rows": [{"contender": "x"}]}',
            "lacks what the 'throughput' table needs",
        ),
        ("<!-- results: throughput -->\n<!-- /results -->\n", "{not json", "not valid JSON"),
    ],
)
def test_missing_or_malformed_input_is_a_typed_error(tmp_path, readme_text, json_text, message):
    readme, results = make_readme_copy(tmp_path)
    readme.write_text(readme_text)
    if json_text is not None:
        (results / "throughput.json").write_text(json_text)
    with pytest.raises(report.ReportError, match=message):
        report.check(readme, results)
