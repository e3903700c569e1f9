"""Bradley-Terry pairs from labelled rows (pure): chosen = passing, rejected = failing.

- Pairs are drawn within one problem (one language's version of it), never across.
- At most ``max_pairs_per_problem`` distinct pairs per problem, pairs whose rejected side
  is a hard negative first; the draw is seeded per problem, so it is deterministic.
- In the training split a hard-negative pair appears ``hard_negative_factor`` times
  (over-sampling); the held-out split keeps every pair once.
- The split is **by problem**: a problem's rows are all in train or all held out,
  decided by a salted hash of the problem's split key. MBXP problems are translations
  of one another (``MBPP/12``, ``MBCPP/12``, ``MBJP/12`` are one task), so their key is
  the task number: a task is held out in every language at once.
- Pairs whose rejected side is a mutant (the cold start's synthetic negatives) are
  balanced for length in the training split: for each size of length difference, where
  the passing side is the longer in more of them than it is the shorter, the surplus is
  dropped (seeded), so that length alone says nothing about which side passes. Mutation
  operators change lengths in one direction more often (dropping a statement always
  shortens), and ``bench method`` measured what a reward model learns from that (issue
  18): trained on unbalanced cold-start pairs it scored the longer of two HumanEval
  candidates higher in 67% of pairs (the untrained head: 53%), while the generator's
  passing programs are mostly its short ones, and its picks fell below a random pick.
  Generator pairs are left alone: there length is a property of the generator's own
  programs, not of how negatives were made.
- Rows of evaluation-only benchmarks (MultiPL-E, HumanEval-X: translations of
  HumanEval, the evaluation set) are refused and counted, never trained on.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from codejury.core.settings import Settings
from codejury.training.errors import TrainingDataError
from codejury.training.queries import hard_negative_ids
from codejury.training.records import LabelledCandidate, Source

#: Datasets whose licence or overlap with the evaluation set forbids training on them.
EVALUATION_ONLY_DATASETS = frozenset(
    {
        "multipl-e/humaneval",
        "multipl-e/mbpp",
        "humaneval-x",
        "humaneval",
        "evalplus/humaneval",
        "evalplus/mbpp",
    }
)
# MultiPL-E ("HumanEval_0_has_close_elements"), HumanEval ("HumanEval/0"), HumanEval-X ("CPP/0").
_EVALUATION_ONLY_IDS = re.compile(
    r"^(HumanEval_\d+_|HumanEval/\d+$|(CPP|Go|Java|JavaScript|Python|Rust)/\d+$)"
)
_MBXP_ID = re.compile(r"^MB[A-Z]*P/(\d+)$")


def is_evaluation_only(row: LabelledCandidate) -> bool:
    """True for rows of MultiPL-E / HumanEval(-X) problems, by dataset or by id shape."""
    if row.dataset in EVALUATION_ONLY_DATASETS:
        return True
    return bool(_EVALUATION_ONLY_IDS.match(row.problem_id))


def split_key(problem_id: str) -> str:
    """The unit of the held-out split: MBXP's task number across languages, else the id."""
    match = _MBXP_ID.match(problem_id)
    return f"mbxp/{match.group(1)}" if match else problem_id


def is_heldout(problem_id: str, *, fraction: float, seed: int) -> bool:
    """Deterministic: the same problem, fraction and seed always land on the same side."""
    digest = hashlib.sha256(f"{seed}\0{split_key(problem_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class PairConfig:
    max_pairs_per_problem: int = 32
    hard_negative_factor: int = 2
    heldout_fraction: float = 0.2
    split_seed: int = 0
    balance_mutant_length: bool = True

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        max_pairs_per_problem: int | None = None,
        hard_negative_factor: int | None = None,
    ) -> PairConfig:
        """``training.*``'s pair settings; an argument left None keeps the setting."""
        t = settings.training
        return cls(
            max_pairs_per_problem=max_pairs_per_problem or t.max_pairs_per_problem,
            hard_negative_factor=hard_negative_factor or t.hard_negative_factor,
            heldout_fraction=t.heldout_fraction,
            split_seed=t.split_seed,
            balance_mutant_length=t.balance_mutant_length,
        )

    def __post_init__(self) -> None:
        if self.max_pairs_per_problem < 1:
            raise TrainingDataError(
                f"max_pairs_per_problem {self.max_pairs_per_problem}: must be >= 1"
            )
        if self.hard_negative_factor < 1:
            raise TrainingDataError(
                f"hard_negative_factor {self.hard_negative_factor}: must be >= 1 "
                "(1 means hard negatives are not over-sampled)"
            )
        if not 0 <= self.heldout_fraction < 1:
            raise TrainingDataError(f"heldout_fraction {self.heldout_fraction}: must be in [0, 1)")


@dataclass(frozen=True)
class Pair:
    """One preference: ``chosen`` passed, ``rejected`` failed, same problem and prompt."""

    language: str
    problem_id: str
    prompt: str
    chosen: str
    rejected: str
    hard: bool  # the rejected side is a hard negative
    mutant: bool = False  # the rejected side is a mutant (the cold start's synthetic negative)


@dataclass(frozen=True)
class Candidate:
    """A distinct program of a problem with its label (for reranked pass@1)."""

    program: str
    passed: bool


@dataclass(frozen=True)
class ProblemCandidates:
    language: str
    problem_id: str
    prompt: str
    candidates: tuple[Candidate, ...]


@dataclass
class PairSet:
    train: list[Pair] = field(default_factory=list)  # hard pairs repeated
    heldout: list[Pair] = field(default_factory=list)  # every pair once
    heldout_problems: list[ProblemCandidates] = field(default_factory=list)
    train_problems: int = 0
    hard_pairs: int = 0  # distinct hard pairs in the training split
    refused_evaluation_rows: int = 0
    rows_without_prompt: int = 0
    conflicting_programs: int = 0  # the same program both passed and failed: left out
    length_balance_dropped: int = 0  # mutant pairs dropped so length says nothing

    def counts(self) -> dict[str, float]:
        return {
            "train_pairs": float(len(self.train)),
            "heldout_pairs": float(len(self.heldout)),
            "train_problems": float(self.train_problems),
            "heldout_problems": float(len(self.heldout_problems)),
            "hard_pairs": float(self.hard_pairs),
            "length_balance_dropped": float(self.length_balance_dropped),
        }


def build_pairs(
    rows: Sequence[LabelledCandidate],
    config: PairConfig,
    *,
    prompts: Mapping[tuple[str, str], str] | None = None,
) -> PairSet:
    """Pairs and held-out candidates from ``rows``; ``prompts`` fills in missing prompts,
    keyed by (language, problem_id)."""
    out = PairSet()
    train: list[Pair] = []
    hard_ids = hard_negative_ids(rows)
    groups: dict[tuple[str, str], list[LabelledCandidate]] = defaultdict(list)
    for row in rows:
        if is_evaluation_only(row):
            out.refused_evaluation_rows += 1
            continue
        groups[row.problem_key].append(row)
    for key in sorted(groups):
        language, problem_id = key
        group = groups[key]
        prompt = next((r.prompt for r in group if r.prompt), "") or (prompts or {}).get(key, "")
        if not prompt:
            out.rows_without_prompt += len(group)
            continue
        passing, failing, hard, conflicts = _distinct(group, hard_ids)
        mutants = {r.program for r in group if r.source == Source.MUTATION}
        out.conflicting_programs += conflicts
        heldout = is_heldout(problem_id, fraction=config.heldout_fraction, seed=config.split_seed)
        if heldout:
            out.heldout_problems.append(
                ProblemCandidates(
                    language,
                    problem_id,
                    prompt,
                    tuple(Candidate(p, True) for p in passing)
                    + tuple(Candidate(p, False) for p in failing),
                )
            )
        pairs = _draw(key, prompt, (passing, failing, hard), mutants, config)
        if heldout:
            out.heldout.extend(pairs)
        else:
            train.extend(pairs)
    if config.balance_mutant_length:
        train, out.length_balance_dropped = balance_length(train, seed=config.split_seed)
    out.train_problems = len({(p.language, p.problem_id) for p in train})
    for pair in train:
        copies = config.hard_negative_factor if pair.hard else 1
        out.train.extend([pair] * copies)
        out.hard_pairs += pair.hard
    return out


def balance_length(pairs: Sequence[Pair], *, seed: int) -> tuple[list[Pair], int]:
    """``pairs`` with the mutant pairs balanced for length, and how many were dropped.

    Mutant pairs of unequal length are grouped by how much the lengths differ, on a
    doubling scale (1, 2-3, 4-7, 8-15, ... characters); within each group as many keep
    the longer program passing as failing, the larger side cut at random (seeded) to the
    smaller one's size. Balancing the counts alone is not enough: dropping a statement
    shortens by a whole line and negating lengthens by a character or four, so a score
    that follows length would still win on the large differences and lose only on the
    small ones. Pairs of equal length and generator pairs are kept; the order is kept.
    """
    groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        delta = len(p.chosen) - len(p.rejected)
        if p.mutant and delta:
            groups[abs(delta).bit_length(), delta > 0].append(i)
    rng = random.Random(f"{seed}\0length")  # noqa: S311
    dropped: set[int] = set()
    for scale in sorted({scale for scale, _ in groups}):
        longer, shorter = groups.get((scale, True), []), groups.get((scale, False), [])
        surplus, keep = (
            (longer, len(shorter)) if len(longer) > len(shorter) else (shorter, len(longer))
        )
        dropped.update(rng.sample(surplus, len(surplus) - keep))
    return [p for i, p in enumerate(pairs) if i not in dropped], len(dropped)


def _distinct(
    group: Sequence[LabelledCandidate], hard_ids: set[str]
) -> tuple[list[str], list[str], set[str], int]:
    """(passing programs, failing programs, hard failing programs, conflicts), in first-seen
    order; a program seen both passing and failing (flaky) is dropped from both."""
    passing: dict[str, None] = {}
    failing: dict[str, None] = {}
    hard: set[str] = set()
    for row in group:
        (passing if row.passed else failing)[row.program] = None
        if row.row_id in hard_ids:
            hard.add(row.program)
    conflicts = passing.keys() & failing.keys()
    return (
        [p for p in passing if p not in conflicts],
        [p for p in failing if p not in conflicts],
        hard - conflicts,
        len(conflicts),
    )


def _draw(
    key: tuple[str, str],
    prompt: str,
    programs: tuple[list[str], list[str], set[str]],
    mutants: set[str],
    config: PairConfig,
) -> list[Pair]:
    """Up to the cap of (passing, failing) pairs, hard ones first, seeded per problem."""
    language, problem_id = key
    passing, failing, hard = programs
    rng = random.Random(f"{config.split_seed}\0{language}\0{problem_id}")  # noqa: S311
    hard_pairs = [(c, r) for c in passing for r in failing if r in hard]
    easy_pairs = [(c, r) for c in passing for r in failing if r not in hard]
    rng.shuffle(hard_pairs)
    rng.shuffle(easy_pairs)
    chosen = (hard_pairs + easy_pairs)[: config.max_pairs_per_problem]
    return [
        Pair(language, problem_id, prompt, c, r, r in hard, mutant=r in mutants) for c, r in chosen
    ]
