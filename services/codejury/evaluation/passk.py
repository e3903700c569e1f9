"""The unbiased pass@k estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", section 2.1), and its mean over problems.

Drawing k of a problem's n samples without replacement, of which c pass, the chance that
at least one drawn sample passes is ``1 - C(n - c, k) / C(n, k)``. The binomials overflow
floats for realistic n (C(200, 100) is about 9e58), so it is computed as the paper's
numpy snippet does, as a product of c factors each in [0, 1]:

    C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from codejury.evaluation.errors import InvalidCountsError


class SampleCounts(NamedTuple):
    """One problem's samples: ``n`` drawn, ``c`` of them passing."""

    n: int
    c: int


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples, drawn from ``n`` of which ``c``
    pass, passes."""
    _check(n, c, k)
    if n - c < k:  # every draw of k includes a passing sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[SampleCounts | tuple[int, int]], k: int) -> float:
    """pass@k averaged over problems, each weighted equally (as the paper reports it)."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise InvalidCountsError(
            f"mean pass@{k} of no problems is undefined: pass at least one (n, c) pair"
        )
    return math.fsum(values) / len(values)


def _check(n: int, c: int, k: int) -> None:
    if n < 1:
        raise InvalidCountsError(
            f"n={n}: pass@k needs at least one sample per problem; sample the problem first"
        )
    if not 0 <= c <= n:
        raise InvalidCountsError(
            f"c={c} with n={n}: the passing count must lie in 0..n; count passing samples "
            "among the n that were run"
        )
    if not 1 <= k <= n:
        raise InvalidCountsError(
            f"k={k} with n={n}: pass@k needs 1 <= k <= n; sample at least k programs per "
            "problem or lower k"
        )
