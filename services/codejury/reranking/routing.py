"""Which reranker version scores a request, and the record of who served what.

Embedded mode: a stable and an optional canary route; a request goes to the canary when
its draw in [0, 1) falls below the canary weight. The Rank service draws at random; the
Kafka stage derives the draw from the request id, so a redelivered event takes the same
route. Cluster mode: one route to the InferenceService, which splits traffic itself.
Either way the version that served is the one the server names in its answer.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codejury.core.logging import get_logger
from codejury.proto.v1 import domain_pb2
from codejury.reranking.errors import ModelServerError, VersionNotServedError
from codejury.reranking.ranking import Ranking, ranking_of
from codejury.reranking.registry import ModelRegistry
from codejury.reranking.scoring import Scorer

log = get_logger(__name__)

STABLE = "stable"
CANARY = "canary"
SERVICE = "service"  # cluster mode: the InferenceService decides


def draw_for_key(key: str) -> float:
    """A stable draw in [0, 1) for ``key`` (the same key always takes the same route)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def choose_channel(draw: float, *, canary_weight: float, has_canary: bool) -> str:
    """CANARY when there is one and ``draw`` < ``canary_weight``, else STABLE."""
    return CANARY if has_canary and draw < canary_weight else STABLE


@dataclass(frozen=True, slots=True)
class Route:
    channel: str
    scorer: Scorer
    expected_version: str | None = None  # what the registry says it serves; None: unknown


class ServedLedger:
    """How many requests each (channel, version) served, safe across server threads."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, channel: str, version: str) -> None:
        with self._lock:
            self._counts[channel, version] += 1
        log.debug("rank.served", channel=channel, version=version)

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


class VersionRouter:
    """Routes to the stable / canary scorers; pinned versions go to whoever serves them."""

    def __init__(
        self,
        stable: Route,
        *,
        canary: Route | None = None,
        canary_weight: float = 0.0,
        registry: ModelRegistry | None = None,
        load_version: Callable[[str], Scorer] | None = None,
    ) -> None:
        self.stable = stable
        self.canary = canary
        self.canary_weight = canary_weight
        self._registry = registry
        self._load_version = load_version
        self._loaded: dict[str, Route] = {}
        self._lock = threading.Lock()

    @property
    def routes(self) -> list[Route]:
        return [self.stable, *([self.canary] if self.canary else []), *self._loaded.values()]

    def route(self, draw: float) -> Route:
        channel = choose_channel(
            draw, canary_weight=self.canary_weight, has_canary=self.canary is not None
        )
        return self.canary if channel == CANARY and self.canary is not None else self.stable

    def pinned(self, version: str) -> Route:
        """The route serving ``version``; Unknown/Corrupt/NotServed errors otherwise."""
        for route in (self.stable, self.canary):
            if route is not None and route.expected_version == version:
                return route
        with self._lock:
            if version in self._loaded:
                return self._loaded[version]
            if self._registry is not None:
                self._registry.model_dir(version)  # UnknownVersionError / CorruptVersionError
            if self._load_version is None:
                served = ", ".join(r.expected_version or r.channel for r in self.routes)
                raise VersionNotServedError(
                    f"version {version!r} is registered but not served here (serving: {served}):"
                    f" start `codejury serve reranking-model --version {version}`, or mark it "
                    "stable or canary"
                )
            route = Route(f"pinned:{version}", self._load_version(version), version)
            self._loaded[version] = route
            return route

    def close(self) -> None:
        for route in self.routes:
            route.scorer.close()


class RewardModelRanker:
    """The reward model behind the Rank interface, through a router."""

    def __init__(self, router: VersionRouter, ledger: ServedLedger | None = None) -> None:
        self.router = router
        self.ledger = ledger or ServedLedger()

    def rank(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        *,
        draw: float,
    ) -> Ranking:
        return self._rank(self.router.route(draw), problem, candidates)

    def rank_version(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        version: str,
    ) -> Ranking:
        return self._rank(self.router.pinned(version), problem, candidates, pinned=version)

    def _rank(
        self,
        route: Route,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        *,
        pinned: str | None = None,
    ) -> Ranking:
        scored = route.scorer.score(problem.prompt, [c.completion for c in candidates])
        if pinned is not None and scored.version != pinned:
            raise ModelServerError(
                f"version {pinned!r} was asked for, but the {route.channel} endpoint answered "
                f"as {scored.version!r}: restart it with --version {pinned}"
            )
        if route.expected_version and scored.version != route.expected_version:
            log.warning(
                "rank.unexpected_version",
                channel=route.channel,
                expected=route.expected_version,
                served=scored.version,
            )
        self.ledger.record(route.channel, scored.version)
        return ranking_of(scored.scores, scored.version, route.channel)
