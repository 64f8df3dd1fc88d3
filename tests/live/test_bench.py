"""The benchmark's quick mode: CI shows it still works end to end (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.program import PROJECT_DIR

pytestmark = pytest.mark.live


def test_quick_benchmark_reports_every_figure(tmp_path: Path, test_images: None) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    for figure in ("download", "upload_monolithic", "upload_chunked"):
        assert result["curl"][figure]["ours"]["h1"]["MBps"] > 0
        assert set(result["ratios"][figure]) >= {"ours/direct", "ours/recipe"}
    assert result["curl"]["download"]["static"]["h2"]["negotiated"] == ["2"]
    assert set(result["skopeo"]) == {"ours", "ours-h2", "recipe"}
    assert all(v["errors"] == 0 for by_protocol in result["concurrency"].values() for v in by_protocol.values())
    assert result["negotiated"]["ours"]["docker"] and result["negotiated"]["ours"]["skopeo"]
    assert "ratios (ours over HTTP/1.1" in done.stdout
