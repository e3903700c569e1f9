"""``codejury operator``: the kopf operator for SelfTrainingRun (operators/codejury_operator),
with a liveness endpoint for its Deployment's probe."""

from __future__ import annotations

from typing import Annotated

import typer

from codejury.cli.app import app, settings_of, start_metrics
from codejury.core.errors import ConfigurationError


@app.command("operator")
def operator_command(
    ctx: typer.Context,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Namespace to watch (repeatable)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Watch the whole cluster.")
    ] = False,
    image: Annotated[str, typer.Option(help="Image of the training Jobs.")] = (
        "ghcr.io/codejury/codejury:latest"
    ),
    run_dir_claim: Annotated[
        str, typer.Option(help="PersistentVolumeClaim of the run directory.")
    ] = "codejury-runs",
    model_store_uri: Annotated[
        str | None,
        typer.Option(
            help="Registry root as KServe sees it (default pvc://<claim>/reranking/registry)."
        ),
    ] = None,
    registry_uri: Annotated[
        str | None, typer.Option(help="reranking.registry_uri for the training Jobs.")
    ] = None,
    service_account: Annotated[
        str | None, typer.Option(help="Service account of the training Jobs' pods.")
    ] = None,
    settings_configmap: Annotated[
        str | None,
        typer.Option(help="ConfigMap of CODEJURY_* settings for the training Jobs (envFrom)."),
    ] = None,
    settings_secret: Annotated[
        str | None,
        typer.Option(help="Secret of CODEJURY_* settings for the training Jobs (envFrom)."),
    ] = None,
    kserve_mode: Annotated[
        str, typer.Option(help="Serverless or Standard; a run overrides it by annotation.")
    ] = "Serverless",
    inference_service: Annotated[
        str, typer.Option(help="The reranker's InferenceService (default for every run).")
    ] = "reranker",
    gateway: Annotated[
        str, typer.Option(help="Standard mode: the Gateway of the splitting HTTPRoute.")
    ] = "codejury-gateway",
    tick: Annotated[
        float, typer.Option(min=0.1, help="Seconds between reconciles of a run.")
    ] = 10.0,
    job_deadline: Annotated[
        int, typer.Option(min=60, help="activeDeadlineSeconds of a training Job.")
    ] = 24 * 3600,
    liveness: Annotated[
        str | None,
        typer.Option(help="Liveness endpoint for the probe, e.g. http://0.0.0.0:8080/healthz."),
    ] = "http://0.0.0.0:8080/healthz",
    prometheus_url: Annotated[
        str | None,
        typer.Option(
            help="Read canary traffic from this Prometheus (PromQL per reranker version) "
            "instead of the traffic exporter's ConfigMap; hard negatives still come from it."
        ),
    ] = None,
    prometheus_selector: Annotated[
        str,
        typer.Option(
            help="Label matchers of the reranking stage's series; {namespace} and {run} "
            "are the run's."
        ),
    ] = 'namespace="{namespace}"',
) -> None:
    """Run the SelfTrainingRun operator (kopf) in this process until stopped."""
    try:
        import kopf
        from codejury_operator.handlers import RunController, build_registry
        from codejury_operator.kube import KubeClient
        from codejury_operator.prometheus import PrometheusTrafficSource
        from codejury_operator.settings import KServeMode, OperatorSettings
        from codejury_operator.traffic import ConfigMapTrafficSource, TrafficSource
    except ImportError as exc:
        raise ConfigurationError(
            f"the operator needs the k8s extra ({exc}): pip install 'codejury[k8s]'"
        ) from exc
    modes = {m.value.lower(): m for m in KServeMode}
    if kserve_mode.lower() not in modes:
        raise ConfigurationError(f"--kserve-mode={kserve_mode!r}: use Serverless or Standard")
    if not namespace and not all_namespaces:
        raise ConfigurationError(
            "--namespace: none given; name the namespaces to watch (--namespace ml) or pass "
            "--all-namespaces"
        )
    settings = OperatorSettings(
        image=image,
        run_dir_claim=run_dir_claim,
        model_store_uri=model_store_uri,
        registry_uri=registry_uri,
        service_account=service_account,
        settings_configmap=settings_configmap,
        settings_secret=settings_secret,
        job_deadline_s=job_deadline,
        kserve_mode=modes[kserve_mode.lower()],
        inference_service=inference_service,
        gateway=gateway,
        tick_s=tick,
    )
    # Connect before kopf starts: without credentials kopf logs a LoginError traceback
    # from every task and never exits; this fails in one line instead (CredentialsError).
    client = KubeClient.connect()
    start_metrics(settings_of(ctx))  # runs, phases, reconciles and actions (metrics.port)
    controllers: list[RunController] = []

    def controller() -> RunController:
        if not controllers:
            source: TrafficSource = ConfigMapTrafficSource(client)
            if prometheus_url:
                source = PrometheusTrafficSource(
                    prometheus_url,
                    hard_negatives_from=source,
                    selector=prometheus_selector,
                )
            controllers.append(RunController(settings, client, source))
        return controllers[0]

    registry = build_registry(settings, controller)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=all_namespaces,
        namespaces=namespace or (),
        liveness_endpoint=liveness,
    )


@app.command("traffic-exporter")
def traffic_exporter_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Option(help="The SelfTrainingRun whose canary it counts.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The run's namespace.")],
    interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between ConfigMap writes.")
    ] = 10.0,
    server: Annotated[
        str | None, typer.Option(help="Kubernetes API URL; default: in-cluster or kubeconfig.")
    ] = None,
    health_port: Annotated[
        int | None,
        typer.Option(help="Serve grpc.health.v1 on this port (0.0.0.0) for the pod's probes."),
    ] = None,
) -> None:
    """Count codejury.feedback and codejury.solve.completed per reranker version (as
    `codejury run` does) into the run's <run>-traffic ConfigMap, until SIGTERM."""
    from datetime import UTC, datetime

    from codejury_operator.exporter import TrafficExporter
    from codejury_operator.kube import KubeClient

    from codejury.cli.app import err_console, stop_signal
    from codejury.core import metrics
    from codejury.core.errors import TemporaryError
    from codejury.core.grpc import health_server
    from codejury.runtime.meter import TrafficMeter

    settings = settings_of(ctx)
    stop = stop_signal()
    client = KubeClient.connect(server)  # no credentials: one line, before Kafka is tried
    start_metrics(settings)
    meter = TrafficMeter().follow(settings.bus)
    exporter = TrafficExporter(client, meter, namespace, run)
    health = None if health_port is None else health_server("0.0.0.0", health_port)  # noqa: S104
    if health is not None:
        health.start()
    try:
        while not stop.is_set():
            try:
                exporter.export_once(datetime.now(UTC))
                metrics.TRAFFIC_EXPORTS.labels("ok").inc()
            except TemporaryError as exc:
                metrics.TRAFFIC_EXPORTS.labels("error").inc()
                # The run may not exist yet, or the API server blinked: the counts live in
                # the meter, so the next export catches up. (It used to end the process.)
                err_console.print(f"traffic export failed, retrying in {interval:g}s: {exc}")
            stop.wait(interval)
    finally:
        if health is not None:
            health.stop(grace_s=1)
        meter.stop()
        client.close()
