"""The benchmark's quick mode: CI shows it still works end to end (figures are not judged here: no timing assertions)."""

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
        for target in ("direct", "ours", "ours-container", "ours-relayed", "ours-plain", "recipe"):
            assert result["curl"][figure][target]["h1"]["MBps"] > 0, (figure, target)
        assert set(result["ratios"][figure]) >= {
            "ours/direct", "ours-container/direct", "ours/ours-container", "ours/recipe", "ours/ours-relayed",
            "ours-plain/direct",
        }  # fmt: skip
    # ours-container: our nginx at the proxy container's address, TLS on 443, no docker-proxy (like direct).
    assert result["targets_compared"]["ours-container"] == "https://registry.bench.test"
    assert result["curl"]["upload_monolithic"]["ours-container"]["h1"]["negotiated"] == ["1.1"]
    assert set(result["ratios"]["download"]) >= {"ours/static", "ours-relayed/static"}
    assert result["curl"]["download"]["static"]["h2"]["negotiated"] == ["2"]
    # The ablation compares what it says it compares: the fast path asks the registry (HEAD), relayed GETs.
    assert result["relayed_site_matches_program"] is True
    assert result["small_blob"]["registry_saw_for_one_get"] == {"ours": ["HEAD"], "ours-relayed": ["GET"]}
    for target in ("direct", "ours", "ours-relayed"):
        assert set(result["small_blob"][target]) == {"p50_ms", "p95_ms"}
    mirror = result["mirror"]
    assert mirror["mirror"]["MBps"] > 0 and mirror["ours"]["MBps"] > 0 and "mirror/ours" in mirror
    assert mirror["upstream_blob_gets_while_measuring"] == 0  # served from the mirror's cache
    assert set(result["skopeo"]) == {"ours", "ours-relayed", "ours-h2", "recipe"}
    assert set(result["concurrency"]) == {"direct", "ours", "ours-relayed", "recipe", "ours-h2"}
    assert all(v["errors"] == 0 for by_protocol in result["concurrency"].values() for v in by_protocol.values())
    assert result["negotiated"]["ours"]["docker"] and result["negotiated"]["ours"]["skopeo"]
    assert {t["what"] for t in result["targets"]} >= {
        "download: ours / static TLS", "cached layer: mirror / ours",
        "upload (PUT): ours-container / direct", "upload (PATCH): ours-container / direct",
    }  # fmt: skip
    assert not any(t["what"].startswith("upload") and "ours / direct" in t["what"] for t in result["targets"])
    through_docker_proxy = result["upload_through_docker_proxy"]
    assert set(through_docker_proxy) == {
        "upload (PUT): ours (host port) / direct", "upload (PATCH): ours (host port) / direct",
        "upload (PUT): ours (host port) / ours-container", "upload (PATCH): ours (host port) / ours-container",
        "explanation",
    }  # fmt: skip
    assert "docker-proxy" in through_docker_proxy["explanation"]
    assert all(isinstance(v, float) for k, v in through_docker_proxy.items() if k != "explanation")
    assert all(set(t) == {"what", "ratio", "at_least", "met"} for t in result["targets"])
    assert "ratios (over HTTP/1.1" in done.stdout and "targets (issues #11, #12)" in done.stdout
