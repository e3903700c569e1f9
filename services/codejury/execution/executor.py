"""Executes candidates: assemble, compile once (cached), run in the sandbox, classify.

Compilation runs in the sandbox too (a compiler fed untrusted source is untrusted work),
writing into a host build dir mounted at /sandbox/build; the finished build dir is moved
into the compile cache, keyed by the toolchain's fingerprint and the program text, and
mounted read-only for the run. C++ compiles against a precompiled ``bits/stdc++.h``
built once per toolchain (about 3.5x faster per program on these machines).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from threading import Lock

from codejury.core import metrics
from codejury.core.logging import get_logger
from codejury.core.settings import TypeScriptCheck
from codejury.execution.assembly import assemble
from codejury.execution.compile_cache import (
    cache_path,
    claim_batch_time,
    compile_log,
    publish,
    read_cached,
    write_marker,
)
from codejury.execution.errors import InvalidRequestError, SandboxUnavailableError
from codejury.execution.languages import Language, require_available
from codejury.execution.languages.base import BUILD_DIR, BatchCompiler, expand
from codejury.execution.sandbox import Limits, Mount, Sandbox, SandboxRequest
from codejury.execution.statuses import Verdict, classify_compile, classify_run
from codejury.proto.v1 import domain_pb2

log = get_logger(__name__)

PCH_DIR = "/sandbox/pch"
HELPER_DIR = "/sandbox/helper"  # a language's batch-compile helper, read-only
_STDCXX = "bits/stdc++.h"


@dataclass(frozen=True)
class ExecutorConfig:
    cache_dir: Path
    default_limits: Limits = field(default_factory=Limits)
    parallelism: int = 2
    max_program_bytes: int = 1 << 20
    use_pch: bool = True
    typescript_check: TypeScriptCheck = "tsc"  # execution.typescript_check


class Executor:
    def __init__(self, sandbox: Sandbox, config: ExecutorConfig) -> None:
        self.sandbox = sandbox
        self.config = config
        config.cache_dir.mkdir(parents=True, exist_ok=True)
        if not sandbox.config.unsafe_no_sandbox:
            _check_reachable(config.cache_dir, sandbox.config.uid)
        # what is built once per toolchain (C++'s PCH, batch-compile helpers), by
        # (kind, fingerprint); None when it could not be built
        self._built_lock = Lock()
        self._built: dict[tuple[str, str], Path | None] = {}

    def _language(self, name: str) -> Language:
        """The language as this executor's settings judge it (TypeScript's check)."""
        return require_available(name, typescript_check=self.config.typescript_check)

    # -- public API --------------------------------------------------------------------

    def execute(
        self,
        problem: domain_pb2.Problem,
        candidate: domain_pb2.Candidate,
        limits: Limits | None = None,
    ) -> domain_pb2.ExecutionResult:
        program = assemble(problem, candidate.completion)
        started = time.monotonic()
        result = self.run_program(problem.language, program, limits, candidate.candidate_id)
        status = domain_pb2.ExecutionStatus.Name(result.status).removeprefix("EXECUTION_STATUS_")
        metrics.SANDBOX_RUNS.labels(problem.language, status).inc()
        metrics.SANDBOX_SECONDS.labels(problem.language).observe(time.monotonic() - started)
        return result

    def execute_batch(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        limits: Limits | None = None,
    ) -> list[domain_pb2.ExecutionResult]:
        """One result per candidate, in order; runs up to ``parallelism`` at a time.

        Languages that compile faster together (Java) compile the batch's programs in one
        go first; each run then finds its program compiled."""
        if len(candidates) > 1:
            self.precompile(
                problem.language, [assemble(problem, c.completion) for c in candidates], limits
            )
        if len(candidates) <= 1 or self.config.parallelism <= 1:
            return [self.execute(problem, c, limits) for c in candidates]
        with ThreadPoolExecutor(max_workers=self.config.parallelism) as pool:
            return list(pool.map(lambda c: self.execute(problem, c, limits), candidates))

    def run_program(
        self,
        language_name: str,
        program: str,
        limits: Limits | None = None,
        candidate_id: str = "",
    ) -> domain_pb2.ExecutionResult:
        # Some languages build and run a program differently by its shape (Go test
        # files, Rust #[test] modules): the registry decides, from the text alone.
        language = self._language(language_name).for_program(program)
        self._validate(program)
        limits = limits or self.config.default_limits
        source = language.source_name(program)
        files = {source: program.encode()}
        build: Path | None = None
        compile_ms = 0.0
        if language.compile:
            verdict, build, compile_ms = self._compiled(language, program, source, limits)
            if verdict is not None:
                return domain_pb2.ExecutionResult(
                    candidate_id=candidate_id,
                    status=verdict.status,
                    detail=verdict.detail,
                    compile_time_ms=compile_ms,
                    stderr=compile_log(build),
                )
        run_limits = (
            replace(limits, memory_bytes=language.run_memory_bytes)
            if language.run_memory_bytes
            else limits
        )
        outcome = self.sandbox.run(
            SandboxRequest(
                argv=expand(language.run, src=source, main=Path(source).stem),
                files=files,
                limits=run_limits,
                env=language.env,
                mounts=[
                    *_toolchain_mounts(language),
                    *([Mount(build, BUILD_DIR)] if build else []),
                ],
            )
        )
        verdict = classify_run(outcome, run_limits)
        return domain_pb2.ExecutionResult(
            candidate_id=candidate_id,
            status=verdict.status,
            exit_code=outcome.exit_code if outcome.exit_code is not None else -1,
            signal=outcome.signal or 0,
            wall_time_ms=outcome.wall_time_s * 1000,
            cpu_time_ms=outcome.cpu_time_s * 1000,
            compile_time_ms=compile_ms,
            max_memory_bytes=outcome.memory_peak_bytes,
            stdout=outcome.stdout.decode(errors="replace"),
            stderr=outcome.stderr.decode(errors="replace"),
            stdout_truncated=outcome.stdout_truncated,
            stderr_truncated=outcome.stderr_truncated,
            detail=verdict.detail,
        )

    def _validate(self, program: str) -> None:
        if not program.strip():
            raise InvalidRequestError("program is empty: give the source to run")
        size = len(program.encode())
        if size > self.config.max_program_bytes:
            raise InvalidRequestError(
                f"program is {size} bytes, over the limit of {self.config.max_program_bytes}"
            )

    # -- compilation -------------------------------------------------------------------

    def _compiled(
        self, language: Language, program: str, source: str, limits: Limits
    ) -> tuple[Verdict | None, Path, float]:
        """(verdict if the compile failed, build dir, compile ms); cached by content."""
        pch = self._pch_for(language)
        final = cache_path(self.config.cache_dir, language, program, source, pch)
        hit, cached = read_cached(final)
        if hit:
            # compiled moments ago in this request's batch: its time is this request's
            return cached, final, claim_batch_time(final)
        work = self._new_build_dir(language.name)
        mounts = [*_toolchain_mounts(language), Mount(work, BUILD_DIR, writable=True)]
        if pch is not None:
            mounts.append(Mount(pch, PCH_DIR))
        if language.compile_cache:
            shared = self._shared_cache(language)
            mounts.append(Mount(shared, language.compile_cache, writable=True))
        compile_limits = _compile_limits(language, limits)
        argv = _with_pch(expand(language.compile, src=source, main=Path(source).stem), pch)
        outcome = self.sandbox.run(
            SandboxRequest(
                argv=argv,
                files={source: program.encode()},
                limits=compile_limits,
                env=language.env,
                mounts=mounts,
            )
        )
        verdict = classify_compile(outcome, compile_limits)
        write_marker(work, verdict, (outcome.stderr + outcome.stdout).decode(errors="replace"))
        if verdict is not None and verdict.status == domain_pb2.SANDBOX_ERROR:
            shutil.rmtree(work, ignore_errors=True)  # never cache our own failure
            return verdict, work, outcome.wall_time_s * 1000
        publish(work, final)
        return verdict, final, outcome.wall_time_s * 1000

    # -- batch compilation -------------------------------------------------------------

    def precompile(
        self, language_name: str, programs: Sequence[str], limits: Limits | None = None
    ) -> int:
        """Compile the not yet cached ``programs`` together where their language can
        (Java: one javac JVM for the whole batch instead of one per program).

        Each program ends in the compile cache exactly as its own compile would leave
        it, so the runs that follow find it there. Returns how many were compiled; a
        program the batch did not finish (the batch timed out, the helper failed) is
        simply compiled on its own when it runs."""
        limits = limits or self.config.default_limits
        base = self._language(language_name)
        # Variants of one language (Go test files, ...) compile apart; Language holds a
        # dict (env), so group by what makes a variant.
        groups: dict[tuple[str, tuple[str, ...]], tuple[Language, dict[Path, tuple[str, str]]]]
        groups = {}
        for program in programs:
            language = base.for_program(program)
            if (
                language.batch_compile is None
                or not language.compile
                or not program.strip()
                or len(program.encode()) > self.config.max_program_bytes
            ):
                continue  # nothing to batch, or a program its run will refuse
            source = language.source_name(program)
            pch = self._pch_for(language)
            path = cache_path(self.config.cache_dir, language, program, source, pch)
            if not read_cached(path)[0]:  # keyed by path: a duplicate compiles once
                group = groups.setdefault((language.name, language.compile), (language, {}))
                group[1][path] = (source, program)
        return sum(
            self._compile_together(
                language, [(path, *entry) for path, entry in batch.items()], limits
            )
            for language, batch in groups.values()
            if len(batch) >= 2  # one program gains nothing from the helper's start-up
        )

    def _compile_together(
        self, language: Language, batch: list[tuple[Path, str, str]], limits: Limits
    ) -> int:
        spec = language.batch_compile
        helper = self._batch_helper(language)
        if spec is None or helper is None:
            return 0
        work = self._new_build_dir(f"{language.name}-batch")
        try:
            files: dict[str, bytes] = {}
            manifest = []
            for i, (_, source, program) in enumerate(batch):
                out = work / str(i)
                out.mkdir()
                self._give_to_sandbox_user(out)
                files[f"src/{i}/{source}"] = program.encode()
                manifest.append(f"{i}\tsrc/{i}/{source}\n")
            files["manifest"] = "".join(manifest).encode()
            compile_limits = _compile_limits(language, limits)
            # the whole batch gets one program's allowance plus a little per program
            compile_limits = replace(
                compile_limits, timeout_s=compile_limits.timeout_s + 2.0 * len(batch)
            )
            outcome = self.sandbox.run(
                SandboxRequest(
                    argv=[
                        *expand(spec.run, src="", main="", helper=HELPER_DIR, manifest="manifest"),
                        *spec.options,
                    ],
                    files=files,
                    limits=compile_limits,
                    env=language.env,
                    mounts=[
                        *_toolchain_mounts(language),
                        Mount(work, BUILD_DIR, writable=True),
                        Mount(helper, HELPER_DIR),
                    ],
                )
            )
            done = 0
            for i, (final, source, _) in enumerate(batch):
                # javac names the file as it was given: as a compile of its own would
                if self._adopt_batch_build(work / str(i), final, (f"src/{i}/{source}", source)):
                    done += 1
            if done < len(batch):
                log.warning(
                    "compile.batch_incomplete",
                    language=language.name,
                    compiled=done,
                    programs=len(batch),
                    exit_code=outcome.exit_code,
                    timed_out=outcome.timed_out,
                    error=outcome.sandbox_error or outcome.stderr.decode(errors="replace")[-300:],
                )
            return done
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _adopt_batch_build(self, out: Path, final: Path, rename: tuple[str, str]) -> bool:
        """Move one program's batch output into the cache, marked as its own compile
        would mark it; False when the batch did not finish that program."""
        rc_file = out / ".codejury-batch.rc"
        try:
            code_text, millis_text = rc_file.read_text().split()
            code, millis = int(code_text), float(millis_text)
            log_text = (out / ".codejury-batch.log").read_text(errors="replace")
            log_text = log_text.replace(*rename)
        except (OSError, ValueError):
            return False
        for name in (".codejury-batch.rc", ".codejury-batch.log"):
            (out / name).unlink()
        verdict = (
            None
            if code == 0
            else Verdict(domain_pb2.COMPILE_ERROR, f"compiler failed (exit code {code})")
        )
        write_marker(out, verdict, log_text, batch_ms=millis)
        publish(out, final)
        return True

    def _batch_helper(self, language: Language) -> Path | None:
        """The language's batch-compile helper, built once per toolchain (in the
        sandbox, like every compile); None when it cannot be built."""
        spec = language.batch_compile
        if spec is None:
            return None
        fingerprint = language.toolchain_fingerprint()
        return self._built_once(
            "helper", fingerprint, lambda: self._build_helper(language, spec, fingerprint)
        )

    def _build_helper(
        self, language: Language, spec: BatchCompiler, fingerprint: str
    ) -> Path | None:
        source_file = Path(__file__).with_name("languages") / spec.helper
        source = source_file.read_bytes()
        final = (
            self.config.cache_dir
            / "helpers"
            / language.name
            / (fingerprint + "-" + hashlib.sha256(source).hexdigest()[:12])
        )
        if (final / ".built").exists():
            return final
        work = self._new_build_dir(f"{language.name}-helper")
        outcome = self.sandbox.run(
            SandboxRequest(
                argv=expand(spec.build, src=spec.helper, main=Path(spec.helper).stem),
                files={spec.helper: source},
                limits=_compile_limits(language, self.config.default_limits),
                env=language.env,
                mounts=[*_toolchain_mounts(language), Mount(work, BUILD_DIR, writable=True)],
            )
        )
        if outcome.exit_code != 0:
            log.warning(
                "compile.batch_helper_failed",
                language=language.name,
                error=outcome.sandbox_error or outcome.stderr.decode(errors="replace")[-500:],
            )
            shutil.rmtree(work, ignore_errors=True)
            return None
        (work / ".built").write_text("")
        publish(work, final)
        return final

    def _new_build_dir(self, language: str) -> Path:
        work = self.config.cache_dir / "tmp" / f"{language}-{uuid.uuid4().hex}"
        work.mkdir(parents=True)
        self._give_to_sandbox_user(work)
        return work

    def _give_to_sandbox_user(self, path: Path) -> None:
        if not self.sandbox.config.unsafe_no_sandbox and os.geteuid() == 0:
            os.chown(path, self.sandbox.config.uid, self.sandbox.config.gid)

    def _shared_cache(self, language: Language) -> Path:
        path = self.config.cache_dir / "shared" / language.name
        if not path.exists():
            path.mkdir(parents=True, exist_ok=True)
            self._give_to_sandbox_user(path)
        return path

    def _pch_for(self, language: Language) -> Path | None:
        """The precompiled-header dir for C++ (built once, in the sandbox), else None."""
        if language.name != "cpp" or not self.config.use_pch:
            return None
        fingerprint = language.toolchain_fingerprint()
        return self._built_once("pch", fingerprint, lambda: self._build_pch(language, fingerprint))

    def _built_once(
        self, kind: str, fingerprint: str, build: Callable[[], Path | None]
    ) -> Path | None:
        with self._built_lock:
            if (kind, fingerprint) not in self._built:
                self._built[kind, fingerprint] = build()
            return self._built[kind, fingerprint]

    def _build_pch(self, language: Language, fingerprint: str) -> Path | None:
        final = self.config.cache_dir / "pch" / fingerprint
        if (final / _STDCXX).with_suffix(".h.gch").exists():
            return final
        header = _find_stdcxx_header()
        if header is None:
            log.warning("pch.header_not_found")
            return None
        work = self._new_build_dir("pch")
        (work / "bits").mkdir()
        self._give_to_sandbox_user(work / "bits")
        flags = [a for a in language.compile if a.startswith(("-std", "-O"))]
        outcome = self.sandbox.run(
            SandboxRequest(
                argv=[
                    language.toolchain[0],
                    *flags,
                    "-x",
                    "c++-header",
                    str(header),
                    "-o",
                    f"{BUILD_DIR}/bits/stdc++.h.gch",
                ],
                limits=Limits(
                    timeout_s=120,
                    memory_bytes=2 << 30,
                    max_file_bytes=1 << 30,
                    workdir_bytes=16 << 20,
                ),
                mounts=[Mount(work, BUILD_DIR, writable=True)],
            )
        )
        if outcome.exit_code != 0:
            log.warning("pch.build_failed", stderr=outcome.stderr.decode(errors="replace")[-500:])
            shutil.rmtree(work, ignore_errors=True)
            return None
        publish(work, final)
        log.info("pch.built", path=str(final))
        return final


def _find_stdcxx_header() -> Path | None:
    for candidate in sorted(Path("/usr/include").glob("*/c++/*/bits/stdc++.h"), reverse=True):
        return candidate
    return None


def _check_reachable(path: Path, uid: int) -> None:
    """Build dirs are bind-mounted by bubblewrap running as the sandbox user, so every
    ancestor of the cache must be searchable by that user."""
    for directory in [path.resolve(), *path.resolve().parents]:
        mode = directory.stat()
        searchable = mode.st_mode & 0o001 or (mode.st_uid == uid and mode.st_mode & 0o100)
        if not searchable:
            raise SandboxUnavailableError(
                f"the compile cache {path} is not reachable by the sandbox user (uid {uid}): "
                f"{directory} has mode {oct(mode.st_mode & 0o777)}; set "
                "CODEJURY_EXECUTION__CACHE_DIR to a directory under a world-searchable path "
                "(e.g. /var/cache/codejury)"
            )


def _toolchain_mounts(language: Language) -> list[Mount]:
    return [Mount(Path(p), p) for p in language.ro_paths if Path(p).exists()]


def _with_pch(argv: list[str], pch: Path | None) -> list[str]:
    """Replace the ``{pch}`` placeholder by ``-I <pch dir>``, or drop it."""
    out: list[str] = []
    for arg in argv:
        if arg != "{pch}":
            out.append(arg)
        elif pch is not None:
            out += ["-I", PCH_DIR]
    return out


def _compile_limits(language: Language, limits: Limits) -> Limits:
    """A compile's limits: the run's, widened to what the compiler needs."""
    return replace(
        limits,
        timeout_s=max(limits.timeout_s, language.compile_timeout_s),
        cpu_time_s=None,
        memory_bytes=max(limits.memory_bytes, language.compile_memory_bytes),
        max_processes=max(limits.max_processes, 256),
    )
