"""What `codejury deploy local` hands podman kube play (the run: tests/integration/deploy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("helm_python", reason="rendering needs the deploy extra")

from codejury.deploy import local


def test_the_local_plan_gives_podman_only_what_it_runs(tmp_path: Path) -> None:
    plan = local.plan(tmp_path)
    objects = [o for o in yaml.safe_load_all(plan.manifests.read_text()) if o]
    assert {o["kind"] for o in objects} == {"ConfigMap", "Deployment"}
    assert all(name.startswith("Service/") for name in plan.skipped) and plan.skipped
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        assert spec["hostNetwork"] is True
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            # port mappings are refused with host networking; probes need systemd
            assert not {"ports", "readinessProbe", "livenessProbe", "startupProbe"} & set(container)
    mounted = {
        v["hostPath"]["path"]
        for d in deployments
        for v in d["spec"]["template"]["spec"].get("volumes", [])
        if "hostPath" in v
    }
    assert mounted == {str(plan.run_dir)} and plan.run_dir.is_relative_to(tmp_path.resolve())
    # the readiness the command checks itself: every gRPC server's health port
    assert {p.component for p in plan.probes} == {
        "solve", "generation", "execution", "reranking", "worker"
    }  # fmt: skip
    assert plan.solve_port == 50050
    # the reranking stage's init container becomes a podman run before the pods start
    (init,) = plan.init_steps
    assert init.component == "reranking" and init.args[:2] == ("reranker", "init")
    assert "--exist-ok" in init.args and init.user == 10001
    assert (str(plan.run_dir), "/var/lib/codejury") in init.binds
    assert dict(init.env)["CODEJURY_RUN_DIR"] == "/var/lib/codejury"
    command = init.command()
    assert command[:2] == ["run", "--rm"] and command.index(init.image) == len(command) - 9


def test_a_busy_host_port_is_named_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    monkeypatch.setattr(local, "preflight", lambda: None)
    monkeypatch.setattr(local, "image_exists", lambda ref: True)
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(local.LocalRunError, match=f"port {port} is in use on this host"):
            local.check_ready_to_play([port])


def test_a_missing_image_names_the_build_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from codejury.deploy.errors import ImageBuildError

    monkeypatch.setattr(local, "preflight", lambda: None)
    monkeypatch.setattr(local, "image_exists", lambda ref: "sandbox" not in ref)
    with pytest.raises(ImageBuildError, match=r"codejury-sandbox:0\.1\.0 is not here: build it"):
        local.check_ready_to_play([])
