"""The replicas-on-S3 benchmark's quick mode (bench/replicas.py): it runs end to end, the load makes no errors,
nothing it pushed is lost, and all three replicas served it. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound

from harness.program import PROJECT_DIR

pytestmark = pytest.mark.live

S3_IMAGES = ("private-registry-test/moto:5", "private-registry-test/redis:7")


def test_quick_replicas_benchmark_loses_nothing_and_spreads_the_load(
    tmp_path: Path, engine: docker.DockerClient, test_images: None
) -> None:
    for image in S3_IMAGES:
        try:
            engine.images.get(image)
        except ImageNotFound:
            pytest.fail(f"test image {image} is missing; build it with images/build.sh")
    out = tmp_path / "replicas.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.replicas", "--quick", "--out", str(out)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"replicas-1", "replicas-3"}
    for name, variant in result["variants"].items():
        assert variant["errors"] == 0 and variant["manifest_transport_errors"] == 0, (name, variant)
        assert variant["proxy_error_responses"] == 0, (name, variant["runs"])
        assert variant["aggregate_MBps"] > 0 and variant["manifest_samples"] > 0, (name, variant)
    assert result["errors"] == 0
    assert isinstance(result["ratio_3_over_1"], float)
    lost = result["nothing_lost"]
    assert lost["passed"] is True, lost
    for name in ("replicas-1", "replicas-3"):
        # the prober's image and one per client (2 clients, 1 round in quick mode), each a config and a layer
        assert lost[name]["images_pulled"] == lost[name]["images_expected"] == 3, lost[name]
        assert lost[name]["blobs_verified"] == 6, lost[name]
    served = result["served_by_replica"]
    assert set(served["replicas-3"]) == {"registry", "registry-2", "registry-3"}
    assert all(role["load_requests"] > 0 for role in served["replicas-3"].values()), served
    assert served["replicas-1"]["registry"]["load_requests"] > 0, served
    assert "nothing lost: passed" in done.stdout
