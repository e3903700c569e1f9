"""The operator's canary traffic read from a real Prometheus (the Debian package's
binary), scraping this process's /metrics as a PodMonitor would: the counters the
reranking stage moves become each arm's counts, per reranker version."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

pytest.importorskip("kopf", reason="the operator needs the k8s extra")

from codejury.control.status import Phase, RunStatus
from codejury.core import metrics
from codejury_operator.errors import MetricsQueryError
from codejury_operator.prometheus import PICKS, REQUESTS, PrometheusTrafficSource

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)"
)

STABLE, CANARY = "prom-stable", "prom-canary"  # this process's registry is shared


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NoHardNegatives:
    def traffic(self, namespace: str, run: str, status: RunStatus) -> None:
        return None

    def hard_negatives(self, namespace: str, run: str, since: datetime | None) -> int:
        return 7


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    served = metrics.serve_metrics("127.0.0.1", 0)
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: reranking\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{served.port}']\n"
        "        labels: {namespace: ml}\n"  # what a PodMonitor adds
    )
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus did not get ready in 30 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        served.stop()


def _scraped(url: str, query: str, value: float, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = httpx.get(f"{url}/api/v1/query", params={"query": query}).json()
        found = result["data"]["result"]
        if found and float(found[0]["value"][1]) >= value:
            return
        time.sleep(0.3)
    raise AssertionError(f"{query} did not reach {value} in {timeout_s}s")


@pytest.mark.slow  # 12 s (scrapes to wait for); the default lane's 12 minutes are full
def test_each_arm_counts_its_own_version_s_requests_and_picks(prometheus: str) -> None:
    # the series exist at zero before the step starts (a PodMonitor sees them from start)
    for version in (STABLE, CANARY):
        metrics.RERANKS.labels(version).inc(0)
        for outcome in ("passed", "failed", "unlabelled"):
            metrics.RERANK_PICKS.labels(version, outcome).inc(0)
    _scraped(prometheus, f'count({PICKS}{{version=~"prom-.*"}})', 6)
    step_started = datetime.now(UTC)
    # the step's first traffic comes after a scrape inside its window (in a cluster, what
    # arrives within one scrape interval of the step's start can be missed)
    time.sleep(2.5)
    metrics.RERANKS.labels(STABLE).inc(40)
    metrics.RERANK_PICKS.labels(STABLE, "passed").inc(20)
    metrics.RERANK_PICKS.labels(STABLE, "failed").inc(20)
    metrics.RERANKS.labels(CANARY).inc(20)
    metrics.RERANK_PICKS.labels(CANARY, "passed").inc(15)
    metrics.RERANK_PICKS.labels(CANARY, "failed").inc(4)
    metrics.RERANK_PICKS.labels(CANARY, "unlabelled").inc(1)
    _scraped(prometheus, f'{REQUESTS}{{version="{CANARY}"}}', 20)
    time.sleep(3.0)  # a few samples at the new values

    source = PrometheusTrafficSource(prometheus, hard_negatives_from=NoHardNegatives())
    # no stable version yet: the one other than the canary that ranked the most requests
    status = RunStatus(
        phase=Phase.CANARY,
        canary_version=CANARY,
        canary_weight=10,
        step_started_at=step_started,
    )
    traffic = source.traffic("ml", "nightly", status)
    assert traffic is not None and traffic.since == step_started
    # increase() extrapolates to the window's edges: counts within a fifth of the truth,
    # and the pass rates (what the canary is judged by) close to 0.5 and 15/19
    assert 16 <= traffic.canary.requests <= 24 and 15 <= traffic.canary.labelled <= 23
    assert abs(traffic.canary.passed / traffic.canary.labelled - 15 / 19) < 0.05
    assert 32 <= traffic.stable.labelled <= 48
    assert abs(traffic.stable.passed / traffic.stable.labelled - 0.5) < 0.05
    # another namespace's series are not this run's
    assert source.traffic("other", "nightly", status).canary.requests == 0  # type: ignore[union-attr]
    assert source.hard_negatives("ml", "nightly", None) == 7
    # no canary step: nothing to read
    assert source.traffic("ml", "nightly", RunStatus(phase=Phase.IDLE)) is None


def test_an_unreachable_prometheus_is_a_retryable_error_naming_it() -> None:
    port = _free_port()
    source = PrometheusTrafficSource(
        f"http://127.0.0.1:{port}", hard_negatives_from=NoHardNegatives(), timeout_s=2
    )
    status = RunStatus(phase=Phase.CANARY, canary_version=CANARY, step_started_at=datetime.now(UTC))
    with pytest.raises(MetricsQueryError, match=rf"Prometheus at http://127.0.0.1:{port}"):
        source.traffic("ml", "nightly", status)
