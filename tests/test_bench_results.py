"""bench/run_all.py --only keeps the rows of what it did not run, down to a benchmark's other arguments: running
dispatch at 500 ms must not drop the 150 ms figures (both are bench "dispatch")."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run_all

HEADER = "| benchmark (arguments) | figure |\n|---|---|"


def test_only_one_variant_of_a_benchmark_keeps_the_others_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "RESULTS.md").write_text(
        f"{HEADER}\n"
        "| dispatch (--latency-ms 150) | rate | 172 |\n"
        "| dispatch (--latency-ms 500) | rate | 57 |\n"
        "| webhooks (defaults) | rate | 1,640 |\n\n"
        "- dispatch (--latency-ms 150): 2026-12-02 09:22 UTC\n"
        "- dispatch (--latency-ms 500): 2026-12-01 23:52 UTC\n"
        "- webhooks (defaults): 2026-12-02 09:19 UTC\n"
    )
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    rows, runs = run_all._merge_with_previous(
        f"{HEADER}\n| dispatch (--latency-ms 500) | rate | 58 |",
        ["- dispatch (--latency-ms 500): 2026-12-02 09:40 UTC"],
    )
    assert rows.splitlines()[2:] == [
        "| dispatch (--latency-ms 150) | rate | 172 |",
        "| dispatch (--latency-ms 500) | rate | 58 |",
        "| webhooks (defaults) | rate | 1,640 |",
    ]
    assert runs == [
        "- dispatch (--latency-ms 150): 2026-12-02 09:22 UTC",
        "- dispatch (--latency-ms 500): 2026-12-02 09:40 UTC",
        "- webhooks (defaults): 2026-12-02 09:19 UTC",
    ]
