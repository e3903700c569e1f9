"""``codejury bench sandbox``: the sandbox's cost, measured side by side in one run.

For each language the same programs run three ways, each at the same concurrency:
plain subprocesses (no isolation, same interpreter/compiler and flags), the sandbox,
for C++ the sandbox without the precompiled header, and for TypeScript the sandbox with
transpile-only esbuild instead of tsc's type check. Every program is compiled and
run once per mode (a fresh compile cache per mode), so the ratios compare like with like.
The modes take turns in small rounds of programs rather than one after the other, so a
burst of load from another process on these shared cores falls on every mode alike.
The machine is noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from codejury.core.settings import TypeScriptCheck
from codejury.core.stats import percentile
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.languages import get_language
from codejury.execution.languages.base import BUILD_DIR, expand
from codejury.execution.sandbox import Limits, Sandbox, SandboxConfig
from codejury.proto.v1 import domain_pb2

PLAIN, SANDBOX, SANDBOX_NO_PCH = "plain", "sandbox", "sandbox-no-pch"
SANDBOX_BATCH = "sandbox-batch"  # a round's programs compiled together first (Java)
SANDBOX_UNHARDENED = "sandbox-unhardened"  # no seccomp filter, nested user namespaces allowed
# TypeScript transpiled by esbuild instead of type-checked by tsc (typescript_check=none)
SANDBOX_TRANSPILE_ONLY = "sandbox-transpile-only"
# Programs per core in one round of a mode before the next mode takes its turn.
ROUND_PER_CORE = 4


@dataclass(frozen=True)
class ModeResult:
    language: str
    mode: str
    programs: int
    passed: int
    wall_s: float
    latencies_s: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.programs / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_s, q) if self.latencies_s else 0.0


@dataclass(frozen=True)
class LanguageReport:
    language: str
    modes: dict[str, ModeResult]

    def ratio(self, slow: str, fast: str) -> float | None:
        """Median per-program latency of ``slow`` over ``fast``."""
        if slow not in self.modes or fast not in self.modes:
            return None
        a = statistics.median(self.modes[slow].latencies_s)
        b = statistics.median(self.modes[fast].latencies_s)
        return a / b if b else None


def _timed(
    run: Callable[[str], bool], programs: Sequence[str], concurrency: int
) -> tuple[int, float, tuple[float, ...]]:
    def one(program: str) -> tuple[bool, float]:
        started = time.perf_counter()
        ok = run(program)
        return ok, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, programs))
    wall = time.perf_counter() - started
    return sum(ok for ok, _ in results), wall, tuple(t for _, t in results)


def plain_runner(language_name: str, timeout_s: float) -> Callable[[str], bool]:
    """Compile (if needed) and run with plain subprocesses in a temp dir: the baseline."""
    language = get_language(language_name)

    def run(program: str) -> bool:
        with tempfile.TemporaryDirectory(prefix="codejury-bench-") as tmp:
            lang = language.for_program(program)
            source = lang.source_name(program)
            Path(tmp, source).write_text(program)
            Path(tmp, "build").mkdir()
            env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": tmp,
                "LANG": "C.UTF-8",
                "TMPDIR": tmp,
            }
            env.update({k: v.replace("/sandbox", tmp) for k, v in lang.env.items()})

            def host(argv: tuple[str, ...]) -> list[str]:
                expanded = expand(argv, src=source, main=Path(source).stem)
                return [a.replace(BUILD_DIR, f"{tmp}/build") for a in expanded if a != "{pch}"]

            try:
                if lang.compile:
                    built = subprocess.run(
                        host(lang.compile),
                        cwd=tmp,
                        env=env,
                        capture_output=True,
                        timeout=120,
                        check=False,
                    )
                    if built.returncode != 0:
                        return False
                done = subprocess.run(
                    host(lang.run),
                    cwd=tmp,
                    env=env,
                    capture_output=True,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return False
            return done.returncode == 0

    return run


def sandbox_executor(
    sandbox: Sandbox,
    cache_dir: Path,
    language: str,
    limits: Limits,
    *,
    use_pch: bool,
    typescript_check: TypeScriptCheck = "tsc",
) -> Executor:
    return Executor(
        sandbox,
        ExecutorConfig(
            cache_dir=cache_dir,
            default_limits=limits,
            use_pch=use_pch,
            typescript_check=typescript_check,
        ),
    )


def sandbox_runner(executor: Executor, language: str, limits: Limits) -> Callable[[str], bool]:
    # build the header before timing: it is built once per toolchain
    if executor.config.use_pch and language == "cpp":
        executor.run_program("cpp", "#include <bits/stdc++.h>\nint main() {}\n")

    def run(program: str) -> bool:
        return executor.run_program(language, program, limits).status == domain_pb2.PASSED

    return run


def bench_language(
    language: str,
    programs: Sequence[str],
    *,
    sandbox_config: SandboxConfig,
    concurrency: int,
    limits: Limits,
    scratch: Path,
) -> LanguageReport:
    if not programs:
        raise ValueError(f"programs: no programs to measure for {language}")
    sandbox = Sandbox(replace(sandbox_config, hardened=True))
    sandbox.check()
    # the same sandbox without the seccomp filter and --disable-userns: what they cost
    unhardened = Sandbox(replace(sandbox_config, hardened=False))
    unhardened.check()
    modes: dict[str, ModeResult] = {}

    def runner(
        box: Sandbox, cache: str, *, use_pch: bool = True, typescript_check: TypeScriptCheck = "tsc"
    ) -> Callable[[str], bool]:
        executor = sandbox_executor(
            box,
            scratch / f"{language}-{cache}",
            language,
            limits,
            use_pch=use_pch,
            typescript_check=typescript_check,
        )
        return sandbox_runner(executor, language, limits)

    runners: list[tuple[str, Callable[[str], bool]]] = [
        (PLAIN, plain_runner(language, limits.timeout_s)),
        (SANDBOX, runner(sandbox, "pch")),
        (SANDBOX_UNHARDENED, runner(unhardened, "unhardened")),
    ]
    # Before a round's runs, the batch mode compiles the round's programs together; that
    # time is shared out over the round's programs (the cost of a batch of candidates).
    prepares: dict[str, Callable[[Sequence[str]], object]] = {}
    if get_language(language).batch_compile is not None:
        batch = sandbox_executor(
            sandbox, scratch / f"{language}-batch", language, limits, use_pch=True
        )
        runners.append(
            (
                SANDBOX_BATCH,
                lambda program: (
                    batch.run_program(language, program, limits).status == domain_pb2.PASSED
                ),
            )
        )
        prepares[SANDBOX_BATCH] = lambda chunk: batch.precompile(language, chunk, limits)
    if language == "typescript":
        runners.append(
            (SANDBOX_TRANSPILE_ONLY, runner(sandbox, "transpile-only", typescript_check="none"))
        )
    if language == "cpp":
        runners.append((SANDBOX_NO_PCH, runner(sandbox, "nopch", use_pch=False)))
    try:
        walls = dict.fromkeys((mode for mode, _ in runners), 0.0)
        passes = dict.fromkeys(walls, 0)
        latencies: dict[str, list[float]] = {mode: [] for mode in walls}
        round_size = max(1, concurrency * ROUND_PER_CORE)
        for start in range(0, len(programs), round_size):
            chunk = programs[start : start + round_size]
            for mode, run in runners:
                shared = 0.0
                if mode in prepares:
                    started = time.perf_counter()
                    prepares[mode](chunk)
                    shared = time.perf_counter() - started
                passed, wall, times = _timed(run, chunk, concurrency)
                walls[mode] += wall + shared
                passes[mode] += passed
                latencies[mode].extend(t + shared / len(chunk) for t in times)
    finally:
        sandbox.close()
        unhardened.close()
    for mode in walls:
        modes[mode] = ModeResult(
            language, mode, len(programs), passes[mode], walls[mode], tuple(latencies[mode])
        )
    return LanguageReport(language, modes)


def make_scratch() -> Path:
    """A scratch cache the sandbox user can reach (bind mounts run as that user)."""
    path = Path(tempfile.mkdtemp(prefix="codejury-bench-"))
    path.chmod(0o755)
    return path


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
