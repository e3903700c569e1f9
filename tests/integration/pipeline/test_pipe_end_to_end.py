"""Solve requests through the real embedded pipeline: tansu, a Celery worker, the
generation, execution and reranking services (tiny models) and the front door."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import grpc
import pytest
from codejury.bus.envelope import unwrap
from codejury.bus.topics import FEEDBACK
from codejury.core.metrics import serve_metrics
from codejury.core.processes import PARENT_PID_ENV
from codejury.pipeline.client import SolveClient, SolveRpcError, SolveUnavailableError
from codejury.pipeline.embedded import SERVICES, EmbeddedPipeline
from codejury.pipeline.front_door import TRACE_HEADER
from codejury.pipeline.load import model_servers_of
from codejury.proto.v1 import domain_pb2, events_pb2, services_pb2, services_pb2_grpc
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from tests.children import exited
from tests.reflection import listed_services, reflected_pool

N = 3


def problem(i: int, *, with_tests: bool = True) -> domain_pb2.Problem:
    return domain_pb2.Problem(
        problem_id=f"add_{i}",
        language="python",
        prompt=f"def add_{i}(a, b):\n    ",
        tests=f"\nassert add_{i}(1, 2) == 3\n" if with_tests else "",
        assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
    )


def feedback_events(pipeline: EmbeddedPipeline, expected: int, timeout_s: float = 60) -> list:
    """Every feedback event on the embedded broker (duplicates kept)."""
    assert pipeline.broker is not None
    consumer = KafkaConsumer(
        FEEDBACK,
        bootstrap_servers=pipeline.broker.bootstrap_servers,
        group_id=f"test-feedback-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    events: list[tuple[str, events_pb2.Feedback]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    envelope, payload = unwrap(record.value)
                    assert isinstance(payload, events_pb2.Feedback)
                    events.append((envelope.event_id, payload))
            if len(events) >= expected:
                time.sleep(1.0)  # a duplicate would arrive right behind; give it the chance
                for records in consumer.poll(timeout_ms=1000).values():
                    for record in records:
                        envelope, payload = unwrap(record.value)
                        events.append((envelope.event_id, payload))  # type: ignore[arg-type]
                break
    finally:
        consumer.close()
    return events


def check_completed(response: services_pb2.SolveResponse, *, with_tests: bool) -> None:
    assert len(response.candidates) == N
    assert response.reranker_version == "v0"
    assert response.chosen.candidate_id in {c.candidate_id for c in response.candidates}
    assert {s.candidate_id for s in response.scores} == {
        c.candidate_id for c in response.candidates
    }
    assert all(s.model_version == "v0" for s in response.scores)
    if with_tests:
        assert [r.candidate_id for r in response.results] == [
            c.candidate_id for c in response.candidates
        ]
        assert all(r.status != domain_pb2.EXECUTION_STATUS_UNSPECIFIED for r in response.results)
        # the caller's tests decide first: a passing candidate is the answer when there is one
        assert response.selection == domain_pb2.SELECTION_EXECUTION_FIRST
        passed = {r.candidate_id for r in response.results if r.status == domain_pb2.PASSED}
        assert not passed or response.chosen.candidate_id in passed
    else:
        assert not response.results
        assert response.selection == domain_pb2.SELECTION_RERANKER_ONLY


@pytest.mark.slow  # ~30 s; one request end to end stays in the default lane
def test_twenty_requests_complete_with_feedback_one_to_one(pipeline: EmbeddedPipeline) -> None:
    with SolveClient(pipeline.solve_address) as client, ThreadPoolExecutor(4) as pool:
        responses = list(
            pool.map(
                lambda i: client.solve(problem(i, with_tests=i % 5 != 0), N, deadline_s=240),
                range(20),
            )
        )
    for i, response in enumerate(responses):
        check_completed(response, with_tests=i % 5 != 0)
    ids = {r.request_id for r in responses}
    assert len(ids) == 20
    events = feedback_events(pipeline, 20 * N)
    mine = [(eid, f) for eid, f in events if f.request_id in ids]
    # One feedback event per candidate: no duplicate event and no candidate twice.
    assert len({eid for eid, _ in mine}) == len(mine) == 20 * N
    assert Counter((f.request_id, f.candidate.candidate_id) for _, f in mine) == Counter(
        {(r.request_id, c.candidate_id): 1 for r in responses for c in r.candidates}
    )
    by_request = {r.request_id: r for r in responses}
    for _, f in mine:
        response = by_request[f.request_id]
        # the feedback's pick is the reward model's own (its top score, earliest on ties),
        # whatever the tests made the answer: that is what a canary is judged by
        top = max(response.scores, key=lambda s: s.score).candidate_id
        assert f.chosen == (f.candidate.candidate_id == top)
        assert f.reranker_version == "v0"
        if response.results:
            result = next(r for r in response.results if r.candidate_id == f.candidate.candidate_id)
            assert f.result.status == result.status
            assert f.label in (events_pb2.FEEDBACK_LABEL_PASSED, events_pb2.FEEDBACK_LABEL_FAILED)
        else:
            assert f.label == events_pb2.FEEDBACK_LABEL_UNLABELLED


@pytest.mark.slow  # ~40 s; test_crash_and_shutdown keeps SIGTERM in the default lane
def test_killed_execution_service_loses_nothing(pipeline: EmbeddedPipeline) -> None:
    """SIGKILL the execution service with requests in flight, start it again: every
    request completes (at-least-once) and no feedback event is duplicated."""
    execution = pipeline.services["execution"]
    count = 24
    with SolveClient(pipeline.solve_address) as client, ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(client.solve, problem(100 + i), N, deadline_s=300) for i in range(count)
        ]
        # Kill as soon as the first request is answered: the others are in every stage.
        wait(futures, timeout=240, return_when=FIRST_COMPLETED)
        execution.kill()
        assert not execution.running
        assert sum(f.done() for f in futures) < count, "the kill must land with work in flight"
        pipeline.restart("execution")
        responses = [f.result(timeout=360) for f in futures]
    for response in responses:
        check_completed(response, with_tests=True)
    ids = {r.request_id for r in responses}
    events = [
        (eid, f) for eid, f in feedback_events(pipeline, (20 + count) * N) if f.request_id in ids
    ]
    assert len(events) == count * N
    assert len({(f.request_id, f.candidate.candidate_id) for _, f in events}) == count * N


def test_reranker_only_is_carried_through_every_stage(pipeline: EmbeddedPipeline) -> None:
    """The caller's explicit choice reaches the reranking stage (which would otherwise
    resolve the problem's tests to execution first): the answer is the top score."""
    with SolveClient(pipeline.solve_address) as client:
        response = client.solve(
            problem(210), N, deadline_s=240, selection=domain_pb2.SELECTION_RERANKER_ONLY
        )
    assert response.selection == domain_pb2.SELECTION_RERANKER_ONLY
    assert len(response.results) == N  # the tests still ran; they only did not pick
    top = max(response.scores, key=lambda s: s.score).candidate_id
    assert response.chosen.candidate_id == top


def test_deadline_exceeded_leaves_nothing_in_flight(pipeline: EmbeddedPipeline) -> None:
    assert pipeline.front_door is not None
    with SolveClient(pipeline.solve_address) as client:
        with pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED") as caught:
            client.solve(problem(200), N, deadline_s=0.01)
        assert caught.value.code == "DEADLINE_EXCEEDED"
        assert pipeline.front_door.servicer.in_flight == 0
        # The pipeline still answers the next request.
        check_completed(client.solve(problem(201), N, deadline_s=240), with_tests=True)
    assert pipeline.front_door.servicer.in_flight == 0


def test_a_request_a_stage_refuses_fails_fast_with_the_reason(
    pipeline: EmbeddedPipeline,
) -> None:
    """Longer than the generator's context: generation dead-letters it and answers, so the
    caller gets FAILED_PRECONDITION with the reason instead of waiting out its deadline."""
    long = domain_pb2.Problem(
        problem_id="long", language="python", prompt="def f():\n" + "    x = 1\n" * 3000
    )
    started = time.monotonic()
    with (
        SolveClient(pipeline.solve_address) as client,
        pytest.raises(SolveRpcError, match=r"FAILED_PRECONDITION.*context") as caught,
    ):
        client.solve(long, N, deadline_s=240)
    assert caught.value.code == "FAILED_PRECONDITION"
    assert time.monotonic() - started < 60


def test_results_too_large_for_kafka_are_trimmed_to_fit_and_answered(
    pipeline: EmbeddedPipeline,
) -> None:
    """Issue 16's outage: 32 candidates whose tests print 60 KB each make a 1.9 MB
    CandidatesExecuted. It first killed the execution stage's loop (the caller waited out
    its deadline, and every later request too), then failed the request. Now the outputs
    are trimmed to fit a Kafka record, each keeping its head, and the request is answered."""
    # Whatever the tiny model writes lands inside a string literal: every candidate runs
    # and prints its 60 KB.
    noisy = domain_pb2.Problem(
        problem_id="noisy",
        language="python",
        prompt='print("x" * 60000)\n_ = """',
        tests='"""\n',
        assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
    )
    with SolveClient(pipeline.solve_address) as client:
        loud = client.solve(noisy, 32, deadline_s=240)
        after = client.solve(problem(10), N, deadline_s=120)
    assert len(loud.results) == 32
    printed = [r for r in loud.results if r.stdout.startswith("xxx")]
    assert printed and all(r.stdout_truncated and len(r.stdout) < 60_000 for r in printed)
    assert loud.ByteSize() < 1 << 20
    check_completed(after, with_tests=True)


def test_eval_scores_every_ranker_from_the_pipeline(pipeline: EmbeddedPipeline, tmp_path) -> None:
    """HumanEval problems through Solve into the results table and its report files."""
    from codejury.evaluation.datasets import Dataset, load, packaged_file
    from codejury.evaluation.metrics import summarize
    from codejury.evaluation.report import read_json, write_report
    from codejury.pipeline.evaluate import RANKERS, EvalPlan, evaluate

    problems = load(packaged_file(Dataset.HUMANEVAL))[:3]
    plan = EvalPlan(n=N, max_new_tokens=16, deadline_s=240)
    done: list[str] = []
    with SolveClient(pipeline.solve_address) as client:
        outcomes = evaluate(client, problems, plan, on_done=lambda o: done.append(o.problem_id))
    assert sorted(done) == sorted(p.problem.problem_id for p in problems)
    assert [o.problem_id for o in outcomes] == [p.problem.problem_id for p in problems]
    for outcome in outcomes:
        assert len(outcome.candidates) == N
        assert outcome.greedy_passed is not None  # greedy measured, with tests: labelled
        for candidate in outcome.candidates:
            assert candidate.passed is not None  # every candidate ran
            assert set(candidate.scores) == set(RANKERS)
    summary = summarize(outcomes)
    row = summary.average
    assert row.problems == 3 and summary.rankers == RANKERS
    assert 0.0 <= row.random <= row.oracle <= 1.0
    files = write_report(summary, tmp_path)
    assert read_json(files.json) == summary
    assert files.chart.read_bytes().startswith(b"\x89PNG")


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples at http://127.0.0.1:<port>/metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= sample_labels
    )


def test_every_service_s_metrics_move_as_requests_flow(pipeline: EmbeddedPipeline) -> None:
    """Issue 16's acceptance: /metrics of each service scraped, the counters moving. The
    front door counts in this process; each service process and the worker on its port."""
    base = pipeline.settings.metrics.port
    assert base is not None
    here = serve_metrics("127.0.0.1", 0)
    ports = {
        "generation": base + 1,
        "execution": base + 2,
        "reranking": base + 3,
        "worker": base + 4,
    }
    try:
        before = {name: _scrape(port) for name, port in ports.items()} | {
            "here": _scrape(here.port)
        }
        too_long = domain_pb2.Problem(  # dead-lettered by generation (its context)
            problem_id="too-long", language="python", prompt="def f():\n" + "    x = 1\n" * 3000
        )
        with SolveClient(pipeline.solve_address) as client:
            for i in (300, 301):
                check_completed(client.solve(problem(i), N, deadline_s=240), with_tests=True)
            with pytest.raises(SolveRpcError, match="FAILED_PRECONDITION"):
                client.solve(too_long, N, deadline_s=240)
        after = {name: _scrape(port) for name, port in ports.items()} | {"here": _scrape(here.port)}
    finally:
        here.stop()

    def moved(where: str, name: str, **labels: str) -> float:
        return _total(after[where], name, **labels) - _total(before[where], name, **labels)

    solve = {"grpc_service": "codejury.v1.Solve", "grpc_method": "Solve"}
    assert moved("here", "grpc_server_handled_total", grpc_code="OK", **solve) == 2
    refused = moved("here", "grpc_server_handled_total", grpc_code="FAILED_PRECONDITION", **solve)
    assert refused == 1
    assert moved("here", "grpc_server_handling_seconds_count", **solve) == 3
    requested = {"topic": "codejury.solve.requested"}
    assert (
        moved("generation", "codejury_consumer_events_total", outcome="handled", **requested) == 2
    )
    assert (
        moved("generation", "codejury_consumer_events_total", outcome="dead_lettered", **requested)
        == 1
    )
    assert moved("generation", "codejury_dead_letters_total", **requested) == 1
    assert moved("generation", "codejury_generation_tokens_total") > 0
    assert moved("execution", "codejury_consumer_events_total", outcome="handled") == 2
    assert moved("reranking", "codejury_reranker_picks_total") == 2
    assert (
        moved(
            "reranking", "codejury_reranker_requests_total", version=pipeline.reranker_version or ""
        )
        == 2
    )
    # the runs happen in the worker's pool processes, counted through its multiprocess files
    assert moved("worker", "codejury_sandbox_runs_total", language="python") == 2 * N
    assert moved("worker", "codejury_sandbox_run_seconds_count", language="python") == 2 * N


def test_a_killed_stage_is_restarted_and_the_front_door_fails_fast_meanwhile(
    pipeline: EmbeddedPipeline,
) -> None:
    """Issue 16: SIGKILL of the generation process under `codejury up` went unnoticed and a
    Solve waited out its deadline. Now the supervisor reports it, the front door refuses at
    once naming the stage, and the stage is started again and answers."""
    pipeline.services["generation"].kill()
    said = pipeline.supervise()
    assert len(said) == 1 and said[0].startswith("generation exited with code -9; starting")
    with SolveClient(pipeline.solve_address) as client:
        started = time.monotonic()
        with pytest.raises(SolveUnavailableError, match=r"UNAVAILABLE: .*generation: exited"):
            client.solve(problem(400), N, deadline_s=240)
        assert time.monotonic() - started < 5
        deadline = time.monotonic() + 240
        while "generation" in pipeline.outages and time.monotonic() < deadline:
            said += pipeline.supervise()
            time.sleep(0.5)
        assert said[-1] == "generation is running again (attempt 1)", said
        check_completed(client.solve(problem(401), N, deadline_s=240), with_tests=True)
    assert pipeline.supervise() == []  # all is well: nothing to say


@pytest.mark.slow  # ~60 s: two restarts of the reranking service and its model server
@pytest.mark.timeout(600)
def test_a_dead_model_server_restarts_its_service_and_a_killed_service_leaves_no_server(
    pipeline: EmbeddedPipeline,
) -> None:
    """Issue 16 (found by `codejury bench load`): a killed KServe model server left the
    reranking service up and every ranking failing; a killed reranking service left its
    model server running, and each restart started another."""
    with SolveClient(pipeline.solve_address) as client:  # the stage has joined its group
        check_completed(client.solve(problem(409), N, deadline_s=240), with_tests=True)
    servers = model_servers_of(pipeline.services["reranking"].pid)
    assert servers
    os.kill(servers[0], signal.SIGKILL)
    said: list[str] = []
    deadline = time.monotonic() + 60
    while not said and time.monotonic() < deadline:
        said = pipeline.supervise()
        time.sleep(0.5)
    assert said and said[0].startswith("reranking exited with code 1"), said
    deadline = time.monotonic() + 240
    while "reranking" in pipeline.outages and time.monotonic() < deadline:
        said += pipeline.supervise()
        time.sleep(0.5)
    assert said[-1] == "reranking is running again (attempt 1)", said
    with SolveClient(pipeline.solve_address) as client:
        check_completed(client.solve(problem(410), N, deadline_s=240), with_tests=True)
    # SIGKILL of the service: its model servers die with it (no orphan to pile up)
    servers = model_servers_of(pipeline.services["reranking"].pid)
    assert servers
    pipeline.services["reranking"].kill()
    deadline = time.monotonic() + 15
    while not all(exited(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(exited(pid) for pid in servers)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        pipeline.supervise()
        if "reranking" not in pipeline.outages and pipeline.services["reranking"].running:
            break
        time.sleep(0.5)
    with SolveClient(pipeline.solve_address) as client:
        check_completed(client.solve(problem(411), N, deadline_s=240), with_tests=True)


def test_every_child_of_the_deployment_is_told_to_go_with_it(pipeline: EmbeddedPipeline) -> None:
    """`codejury demo` or `up` killed by SIGKILL left its services and Celery worker running
    (and holding their ports): each child names this process as the parent it goes with
    (core.processes.die_with_parent, which tests/unit/core shows stopping a child)."""
    assert pipeline.worker is not None
    children = {name: service.pid for name, service in pipeline.services.items()}
    children["worker"] = pipeline.worker.pid
    told = f"{PARENT_PID_ENV}={os.getpid()}".encode()
    for name, pid in children.items():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert told in environ, name


def test_one_solve_is_one_trace_id_in_the_log_of_every_stage(pipeline: EmbeddedPipeline) -> None:
    """The caller's W3C traceparent (or a new id) travels in every event's envelope; each
    stage binds it to its log lines while it handles the event, and the caller gets it
    back in the response's trailing metadata."""
    trace = uuid.uuid4().hex
    request = services_pb2.SolveRequest(problem=problem(500), n=N, deadline_s=240)
    with grpc.insecure_channel(pipeline.solve_address) as channel:
        stub = services_pb2_grpc.SolveStub(channel)
        _, call = stub.Solve.with_call(
            request, timeout=270, metadata=[("traceparent", f"00-{trace}-{'1' * 16}-01")]
        )
        assert dict(call.trailing_metadata())[TRACE_HEADER] == trace
        _, call = stub.Solve.with_call(
            services_pb2.SolveRequest(problem=problem(501), n=N), timeout=400
        )
        fresh = dict(call.trailing_metadata())[TRACE_HEADER]
    assert len(fresh) == 32 and fresh != trace
    for name in SERVICES:
        log_text = pipeline.services[name].log_path.read_text()
        handled = [line for line in log_text.splitlines() if "consumer.handled" in line]
        assert any(trace in line for line in handled), f"{name}: no line with trace {trace}"
        assert any(fresh in line for line in handled), f"{name}: no line with trace {fresh}"


#: what each server of the deployment serves besides health and reflection
SERVES = {
    "solve": "codejury.v1.Solve",
    "generation": "codejury.v1.Generation",
    "execution": "codejury.v1.Execution",
    "reranking": "codejury.v1.Reranking",
}


def test_every_grpc_server_reflects_exactly_what_it_serves(pipeline: EmbeddedPipeline) -> None:
    """The stages as codejury up runs them (codejury serve ..., settings from the
    environment) and the front door: a reflection client lists each one's services and
    resolves a stage's method from the server alone."""
    addresses = {e.name: e.address for e in pipeline.endpoints() if e.name in SERVES}
    assert addresses.keys() == SERVES.keys()
    for name, address in addresses.items():
        with grpc.insecure_channel(address) as channel:
            assert listed_services(channel) == sorted(
                [SERVES[name], "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]
            ), name
    with grpc.insecure_channel(addresses["execution"]) as channel:
        execution = reflected_pool(channel).FindServiceByName("codejury.v1.Execution")
        batch = execution.methods_by_name["ExecuteBatch"]
        assert batch.input_type.full_name == "codejury.v1.ExecuteBatchRequest"
        candidates = batch.input_type.fields_by_name["candidates"]
        assert candidates.message_type.full_name == "codejury.v1.Candidate"
