"""The cluster-shaped run on one machine: the chart's ``local`` profile rendered and started
with ``podman kube play`` from the built images, a Solve from the host, and ``podman kube
down``. Each step is a function; ``codejury deploy local`` runs them with progress.

What podman 4.3's ``kube play`` cannot take is left out of the manifests it gets, and said
so: Services (host networking makes them moot), the PVC (the local profile mounts a host
directory), containerPorts (podman turns them into port mappings, which host networking
refuses), probes (podman runs them as systemd timers; there is no systemd here) and init
containers, which podman 4.3 runs badly (the "once" kind races its own removal: "cannot
remove container ... as it is running"; the "always" kind restarts forever): each runs
here with ``podman run --rm`` before the pods start, with its pod's settings and mounts.
Readiness is checked instead by asking each server's ``grpc.health.v1`` from the host.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codejury.deploy.chart import Rendered, deep_merge, load_values, profile_path, render
from codejury.deploy.errors import ImageBuildError, LocalRunError
from codejury.deploy.images import IMAGES
from codejury.deploy.podman import image_exists, podman, preflight

PLAYABLE = {"ConfigMap", "Deployment", "Pod"}
RUNTIME_UID = 10001  # the runtime image's user (images/runtime.Containerfile)
PROBLEM = '''def add(a: int, b: int) -> int:
    """Return the sum of a and b."""
'''
TESTS = """

def check(candidate):
    assert candidate(2, 3) == 5
    assert candidate(-1, 1) == 0

check(add)
"""


@dataclass(frozen=True)
class Probe:
    """A server the run waits for: its component and grpc.health.v1 port on the host."""

    component: str
    port: int


@dataclass(frozen=True)
class InitStep:
    """An init container, as ``podman run --rm`` runs it before the pods start."""

    component: str
    image: str
    args: tuple[str, ...]
    user: int | None
    env: tuple[tuple[str, str], ...]
    binds: tuple[tuple[str, str], ...]  # (host path, container path)
    tmpfs: tuple[str, ...]  # the container paths of emptyDir volumes

    def command(self) -> list[str]:
        command = ["run", "--rm", "--network", "host", "--read-only"]
        if self.user is not None:
            command += ["--user", str(self.user)]
        for name, value in self.env:
            command += ["--env", f"{name}={value}"]
        for host, path in self.binds:
            command += ["--volume", f"{host}:{path}"]
        for path in self.tmpfs:
            command += ["--tmpfs", path]
        return [*command, self.image, *self.args]


@dataclass(frozen=True)
class LocalPlan:
    manifests: Path
    run_dir: Path
    probes: tuple[Probe, ...]
    solve_port: int
    skipped: tuple[str, ...]  # "Kind/name" podman is not given
    init_steps: tuple[InitStep, ...] = ()


def plan(workdir: Path, values_files: Sequence[Path] = ()) -> LocalPlan:
    """Render the local profile into ``workdir``; pure but for writing the manifests."""
    run_dir = (workdir / "run-dir").resolve()
    values = deep_merge(
        load_values([profile_path("local"), *values_files]),
        {"storage": {"hostPath": str(run_dir)}},
    )
    rendered = render(values, release="codejury", namespace="codejury")
    playable = [for_podman(o) for o in rendered.objects if o["kind"] in PLAYABLE]
    skipped = tuple(
        f"{o['kind']}/{o['metadata']['name']}"
        for o in rendered.objects
        if o["kind"] not in PLAYABLE
    )
    workdir.mkdir(parents=True, exist_ok=True)
    manifests = workdir / "manifests.yaml"
    manifests.write_text(yaml.safe_dump_all(playable, sort_keys=False))
    return LocalPlan(
        manifests, run_dir, _probes(rendered), _solve_port(values), skipped, _init_steps(rendered)
    )


def _init_steps(rendered: Rendered) -> tuple[InitStep, ...]:
    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in rendered.of_kind("ConfigMap")}
    steps = []
    for deployment in rendered.of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        for container in spec.get("initContainers", []):
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                env.update(configmaps.get((source.get("configMapRef") or {}).get("name"), {}))
            env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
            binds, tmpfs = [], []
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                if "hostPath" in volume:
                    binds.append((volume["hostPath"]["path"], mount["mountPath"]))
                else:
                    tmpfs.append(mount["mountPath"])
            steps.append(
                InitStep(
                    component=component,
                    image=container["image"],
                    args=tuple(container.get("args", [])),
                    user=(container.get("securityContext") or {}).get("runAsUser"),
                    env=tuple(sorted(env.items())),
                    binds=tuple(binds),
                    tmpfs=tuple(tmpfs),
                )
            )
    return tuple(steps)


def for_podman(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without what podman kube play cannot run here (see the module docstring)."""
    adapted = copy.deepcopy(dict(obj))
    if adapted["kind"] != "Deployment":
        return adapted
    spec = adapted["spec"]["template"]["spec"]
    spec.pop("initContainers", None)  # run_init runs them first
    for container in spec["containers"]:
        for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe"):
            container.pop(key, None)
    return adapted


def _solve_port(values: Mapping[str, Any]) -> int:
    return int(values.get("solve", {}).get("port", 50050))


def _probes(rendered: Rendered) -> tuple[Probe, ...]:
    probes = []
    for deployment in rendered.of_kind("Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            grpc_probe = (container.get("readinessProbe") or {}).get("grpc")
            if grpc_probe:
                probes.append(Probe(component, int(grpc_probe["port"])))
    return tuple(sorted(probes, key=lambda p: p.port))


def required_images() -> list[str]:
    return [spec.ref() for spec in IMAGES if spec.name in ("runtime", "sandbox", "redis")]


def check_ready_to_play(ports: Sequence[int]) -> None:
    """podman, runc, the images, and free host ports: or one line naming the fix."""
    preflight()
    missing = [ref for ref in required_images() if not image_exists(ref)]
    if missing:
        raise ImageBuildError(
            f"image {', '.join(missing)} is not here: build it with codejury deploy images"
        )
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))  # noqa: S104 - the local profile's host network
            except OSError as exc:
                raise LocalRunError(
                    f"port {port} is in use on this host ({exc.strerror}); the local profile "
                    "runs on the host network: stop what listens there (a `codejury up`?)"
                ) from exc


def prepare_run_dir(run_dir: Path) -> None:
    """The host directory every pod mounts, writable by the runtime image's user."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for path in [run_dir, *run_dir.rglob("*")]:
            os.chown(path, RUNTIME_UID, RUNTIME_UID)


def _podman(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return podman(*args, timeout_s=timeout_s, error=LocalRunError)


def run_init(step: InitStep) -> None:
    done = _podman(*step.command(), timeout_s=900)
    if done.returncode != 0:
        raise LocalRunError(
            f"the {step.component} init step ({' '.join(step.args[:2])}) failed: "
            f"{_last_lines(done.stdout + done.stderr)}"
        )


def play(manifests: Path) -> None:
    done = _podman("kube", "play", str(manifests), timeout_s=600)
    if done.returncode != 0:
        raise LocalRunError(f"podman kube play failed: {_last_lines(done.stderr)}")


def down(manifests: Path) -> str:
    """``podman kube down``; its complaint, if any (it stops at the first pod it misses)."""
    done = _podman("kube", "down", str(manifests), timeout_s=300)
    return "" if done.returncode == 0 else _last_lines(done.stderr)


def leftovers(manifests: Path) -> list[str]:
    """Pods of these manifests that exist (``<deployment>-pod-<n>``)."""
    prefixes = tuple(
        f"{o['metadata']['name']}-pod-"
        for o in yaml.safe_load_all(manifests.read_text())
        if o and o["kind"] == "Deployment"
    )
    listed = _podman("pod", "ps", "--format", "{{.Name}}", timeout_s=60)
    return sorted(name for name in listed.stdout.split() if name.startswith(prefixes))


def remove_pods(names: Sequence[str]) -> None:
    if names:
        _podman("pod", "rm", "--force", *names, timeout_s=300)


def wait_ready(
    probes: Sequence[Probe], timeout_s: float, on_wait: Callable[[str], None]
) -> dict[str, float]:
    """Seconds until each server said SERVING; LocalRunError names the ones that did not,
    with the last lines of their logs."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    started = time.monotonic()
    ready: dict[str, float] = {}
    pending = list(probes)
    while pending:
        for probe in list(pending):
            with grpc.insecure_channel(f"127.0.0.1:{probe.port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                except grpc.RpcError:
                    continue
            if status == health_pb2.HealthCheckResponse.SERVING:
                ready[probe.component] = time.monotonic() - started
                pending.remove(probe)
        if not pending:
            break
        waited = time.monotonic() - started
        if waited > timeout_s:
            names = ", ".join(p.component for p in pending)
            logs = "; ".join(f"{p.component}: {container_log_tail(p.component)}" for p in pending)
            raise LocalRunError(f"not ready after {timeout_s:g}s: {names} ({logs})")
        on_wait(f"waiting for {', '.join(p.component for p in pending)} ({waited:.0f}s)")
        time.sleep(2)
    return ready


def container_name(component: str) -> str:
    """podman kube play names a Deployment's container <deployment>-pod-0-<container>."""
    return f"codejury-{component}-pod-0-{component}"


def container_log_tail(component: str, lines: int = 3) -> str:
    done = _podman("logs", "--tail", str(lines), container_name(component), timeout_s=30)
    text = (done.stdout + done.stderr).strip()
    return _last_lines(text, lines) or "no log"


def container_log(component: str) -> str:
    done = _podman("logs", container_name(component), timeout_s=60)
    return done.stdout + done.stderr


@dataclass(frozen=True)
class SolveResult:
    chosen_status: str
    statuses: list[str]
    worker_tasks: int


def solve_from_host(port: int, workdir: Path, n: int, timeout_s: float) -> SolveResult:
    """``codejury solve`` from the host against the Solve port, as a user would run it."""
    prompt, tests = workdir / "problem.py", workdir / "tests.py"
    prompt.write_text(PROBLEM)
    tests.write_text(TESTS)
    before = _worker_tasks()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    command = [sys.executable, "-m", "codejury", "solve", str(prompt), "-l", "python"]
    command += ["--tests", str(tests), "-n", str(n), "--target", f"127.0.0.1:{port}", "--json"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalRunError(f"codejury solve got no answer in {timeout_s:g}s") from exc
    if done.returncode != 0:
        raise LocalRunError(f"codejury solve failed: {_last_lines(done.stderr)}")
    answer = json.loads(done.stdout)
    status = {r["candidateId"]: r.get("status", "UNKNOWN") for r in answer.get("results", [])}
    chosen = answer.get("chosen", {}).get("candidateId", "")
    if not chosen or not status:
        raise LocalRunError(f"codejury solve answered without a ranked, executed answer: {answer}")
    return SolveResult(
        status.get(chosen, "UNKNOWN"), sorted(status.values()), _worker_tasks() - before
    )


def _worker_tasks() -> int:
    """Sandbox tasks the worker container has finished (its Celery log lines)."""
    return sum(1 for line in container_log("worker").splitlines() if "succeeded in" in line)


def _last_lines(text: str, count: int = 2) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:])
