"""Fixtures shared by every test: no hub, no leaked CODEJURY_* settings, tiny models."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from codejury.core.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _no_codejury_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests build their settings explicitly; the developer's CODEJURY_* must not leak in."""
    import os

    for name in [n for n in os.environ if n.startswith("CODEJURY_")]:
        monkeypatch.delenv(name)
    yield


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach the Hugging Face hub, even by accident (it is unreachable here
    anyway, and a test that needed it would hang on the network, not fail)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants
    except ImportError:  # no model extra installed: nothing could reach the hub
        yield
        return
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random causal LM with a chat template (see ``codejury.generation.tiny``)."""
    from codejury.generation.tiny import build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("tiny-lm") / "tiny-chat-lm")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT reward-model backbone (see ``codejury.reranking.backbones``)."""
    from codejury.reranking.backbones import build_tiny_backbone

    return build_tiny_backbone(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"run_dir": tmp_path / "run"})


# --- the time budget of a lane (bin/test runs the slow lane with what is left of CI's) ---

_DURATIONS = "codejury/durations"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--time-budget",
        type=float,
        default=None,
        help="Seconds this run may take: a test whose expected duration (its last measured "
        "one, else its timeout) would cross the budget is skipped and listed at the end.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_started] = time.monotonic()
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    config.stash[_measured] = dict(cache.get(_DURATIONS, {})) if cache is not None else {}
    config.stash[_unrun] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    budget = item.config.getoption("--time-budget")
    if budget is None:
        return
    expected = item.config.stash[_measured].get(item.nodeid) or _timeout_of(item)
    left = budget - (time.monotonic() - item.config.stash[_started])
    if expected > left:
        item.config.stash[_unrun].append(item.nodeid)
        pytest.skip(f"time budget: expected {expected:.0f} s, {max(left, 0):.0f} s left")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember each passing test's whole duration (setup + call + teardown)."""
    _phases.setdefault(report.nodeid, []).append(report.duration)
    if report.when == "teardown" and report.outcome != "skipped":
        durations = _phases.pop(report.nodeid)
        if len(durations) == 3:
            _finished[report.nodeid] = sum(durations)


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is not None and _finished:
        cache.set(_DURATIONS, {**session.config.stash[_measured], **_finished})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    unrun = config.stash[_unrun]
    if unrun:
        terminalreporter.write_line(
            f"{len(unrun)} test(s) not run within --time-budget "
            f"{config.getoption('--time-budget'):.0f} s: " + ", ".join(unrun)
        )


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 300)


_started = pytest.StashKey[float]()
_measured = pytest.StashKey[dict[str, float]]()
_unrun = pytest.StashKey[list[str]]()
_phases: dict[str, list[float]] = {}
_finished: dict[str, float] = {}
