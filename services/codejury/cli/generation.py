"""Generation commands: ``serve generation`` and ``bench generation``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from codejury.cli.app import (
    bench_app,
    console,
    data_dir,
    running_stage,
    serve_app,
    settings_of,
    start_metrics,
    start_tracing,
    stop_signal,
)
from codejury.core.settings import Settings, with_group

ModelOption = Annotated[
    str | None,
    typer.Option(
        help="'demo', a model directory, a .gguf file or a hub id (env CODEJURY_GENERATION__MODEL)."
    ),
]


def with_model(settings: Settings, model: str | None, **more: Any) -> Settings:
    update = {k: v for k, v in {"model": model, **more}.items() if v is not None}
    if not update:
        return settings
    return with_group(settings, "generation", **update)


@serve_app.command("generation")
def serve_generation(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="gRPC port (env CODEJURY_GENERATION__GRPC_PORT).")
    ] = None,
    model: ModelOption = None,
    kafka_stage: Annotated[
        bool,
        typer.Option(
            "--kafka-stage",
            help="Also run the Kafka stage: solve.requested -> candidates.generated.",
        ),
    ] = False,
) -> None:
    """The Generation gRPC service (Generate, GenerateStream) until SIGTERM/Ctrl-C.

    The model is loaded first; if it does not load, the command stops with the reason."""
    from codejury.core.grpc import make_server
    from codejury.core.tls import server_credentials
    from codejury.generation.factory import make_generator
    from codejury.generation.service import GenerationServicer, register

    settings = with_model(settings_of(ctx), model)
    gen = settings.generation
    generator = make_generator(gen)  # ModelLoadError: exit 2 with the reason
    start_metrics(settings)
    tracing = start_tracing(settings, "generation")
    served = make_server(
        [register(GenerationServicer(generator))],
        host=gen.grpc_host,
        port=gen.grpc_port if port is None else port,
        max_workers=4,
        credentials=server_credentials(settings.tls),
        probe_port=settings.tls.probe_port,
        reflection=settings.grpc.reflection,
        tracing=tracing,
    )
    stop = stop_signal()
    consumer = None
    if kafka_stage:
        from codejury.bus.consumer import EventConsumer
        from codejury.bus.replies import solve_failed
        from codejury.bus.topics import SOLVE_REQUESTED
        from codejury.generation.stage import make_handler

        consumer = EventConsumer(
            settings.bus,
            group_id="codejury-generation",
            topics=[SOLVE_REQUESTED],
            handler=make_handler(generator),
            name="generation-stage",
            on_dead_letter=solve_failed,  # the caller hears the error, not its deadline
            drop_expired=True,  # past its deadline nobody waits for the answer
            tracing=tracing,
        )
    # A generation can take minutes: let the in-flight one finish and commit.
    with running_stage(consumer, join_timeout_s=600, stop=stop) as watch:
        served.start()
        info = generator.backend.info
        console.print(
            f"Generation service on {gen.grpc_host}:{served.port}: {info.name} ({info.revision}), "
            f"{generator.style.value} prompts{', Kafka stage on' if consumer else ''}",
            highlight=False,
        )
        print(f"READY port={served.port}", flush=True)  # a line scripts and tests can wait for
        stop.wait()
    served.stop(grace_s=10)
    generator.backend.close()
    watch.raise_if_died()


ENGINE_TARGET = 5.0  # llama.cpp against transformers, batched N tokens/s (issue 18)
BATCH_TARGET = 3.0  # batched N against N sequential calls


def bench_engines(settings: Settings, engines: str) -> list[str]:
    """The engines ``--engines`` names; ``auto``: transformers and llama.cpp side by side
    for a GGUF model when llama.cpp is installed, else the engine the settings choose."""
    from codejury.generation.backends import llamacpp
    from codejury.generation.factory import choose_engine

    if engines.strip() != "auto":
        named = list(dict.fromkeys(e.strip() for e in engines.split(",") if e.strip()))
        unknown = [e for e in named if e not in ("transformers", "llamacpp", "openai")]
        if unknown or not named:
            raise typer.BadParameter(
                f"{engines!r}: name engines among transformers, llamacpp, openai, or auto",
                param_hint="--engines",
            )
        return named
    gen = settings.generation
    local = gen.backend in ("auto", "transformers", "llamacpp")
    if local and llamacpp.available() and llamacpp.is_gguf_model(gen):
        return ["transformers", "llamacpp"]
    return [choose_engine(gen)]


@bench_app.command("generation")
def bench_generation(
    ctx: typer.Context,
    problems: Annotated[int, typer.Option(min=1, help="MultiPL-E Python prompts.")] = 2,
    ns: Annotated[str, typer.Option("--n", help="Comma-separated N values.")] = "1,8,16",
    sequential_n: Annotated[
        int, typer.Option(min=2, help="N of the batched/sequential and engine comparisons.")
    ] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per candidate.")] = 128,
    temperature: Annotated[float, typer.Option(min=0.01)] = 0.8,
    seed: Annotated[int, typer.Option(min=1)] = 1234,
    engines: Annotated[
        str,
        typer.Option(
            help="Comma-separated engines (transformers, llamacpp, openai) to compare; auto: "
            "transformers and llamacpp for a GGUF model when llama.cpp is installed."
        ),
    ] = "auto",
    model: ModelOption = None,
    data: Annotated[Path | None, typer.Option("--data-dir", help="Benchmark data folder.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Candidates/s and tokens/s for each engine and N, batched N against N sequential
    calls, and llama.cpp against transformers at that N (the same problems and sampling,
    in this run). Targets: batched N=8 >= 3x sequential; llama.cpp >= 5x transformers."""
    import time

    from codejury.evaluation.datasets import Dataset, find, load
    from codejury.generation.bench import measure_engines, speedup
    from codejury.generation.factory import make_generator
    from codejury.proto.v1 import domain_pb2

    settings = with_model(settings_of(ctx), model)
    prompts = [p.problem for p in load(find(data_dir(settings, data), Dataset.MULTIPL_E, "python"))]
    prompts = prompts[:problems]
    values = sorted({int(v) for v in ns.split(",") if v.strip()})
    if sequential_n not in values:
        values.append(sequential_n)
    sampling = domain_pb2.SamplingParams(
        temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
    )
    warm = domain_pb2.SamplingParams(max_new_tokens=4, seed=seed)
    generators = {}
    load_s: dict[str, float] = {}
    for engine in bench_engines(settings, engines):
        started = time.perf_counter()
        generators[engine] = make_generator(
            with_group(settings, "generation", backend=engine).generation
        )
        load_s[engine] = time.perf_counter() - started
        generators[engine].generate(prompts[:1], 1, warm, request_key="bench-warmup")
    with console.status(
        f"sampling {len(prompts)} problems with {', '.join(generators)}: {sequential_n} "
        f"sequential calls, then batched n={', '.join(map(str, values))}, problem by problem"
    ):
        results = measure_engines(generators, prompts, values, sequential_n, sampling)
    first = next(iter(generators.values()))
    info = first.backend.info
    table = Table(
        title=f"codejury bench generation: {info.name} ({first.style.value} prompts), "
        f"{len(prompts)} MultiPL-E Python prompts, max_new_tokens={max_new_tokens}"
    )
    columns = ("engine", "mode", "N", "candidates", "tokens", "s/problem", "candidates/s")
    for column in (*columns, "tokens/s", "tokens/CPU-s"):
        table.add_column(column)
    for sequential, runs in results.values():
        for run in [sequential, *runs]:
            table.add_row(
                run.engine,
                run.mode,
                str(run.n),
                str(run.candidates),
                str(run.tokens),
                f"{run.seconds_per_problem:.1f}",
                f"{run.candidates_per_s:.2f}",
                f"{run.tokens_per_s:.1f}",
                f"{run.tokens_per_cpu_s:.1f}",
            )
    console.print(table)
    console.print(
        "model load: " + ", ".join(f"{e} {s:.1f} s" for e, s in load_s.items()), highlight=False
    )
    report: dict[str, Any] = {
        "model": info.name,
        "revision": info.revision,
        "prompt_style": first.style.value,
        "load_seconds": {e: round(s, 2) for e, s in load_s.items()},
        "torch_threads": settings.generation.torch_threads,
        "llamacpp_threads": settings.generation.llamacpp_threads,
        "runs": [r.as_dict() for seq, runs in results.values() for r in [seq, *runs]],
        "speedup_tokens_per_s": {},
        "speedup_tokens_per_cpu_s": {},
    }
    batched = {e: next(r for r in runs if r.n == sequential_n) for e, (_, runs) in results.items()}
    for engine, (sequential, _) in results.items():
        ratio = speedup(batched[engine], sequential, by="wall")
        cpu_ratio = speedup(batched[engine], sequential, by="cpu")
        verdict = "[green]meets[/]" if ratio >= BATCH_TARGET else "[red]misses[/]"
        console.print(
            f"{engine}: batched N={sequential_n} vs {sequential_n} sequential calls: "
            f"{ratio:.2f}x tokens/s ({verdict} the {BATCH_TARGET:g}x target), "
            f"{cpu_ratio:.2f}x tokens per CPU-second",
            highlight=False,
        )
        report["speedup_tokens_per_s"][f"{engine}:batched/sequential"] = round(ratio, 3)
        report["speedup_tokens_per_cpu_s"][f"{engine}:batched/sequential"] = round(cpu_ratio, 3)
    if "llamacpp" in batched and "transformers" in batched:
        ratio = speedup(batched["llamacpp"], batched["transformers"], by="wall")
        cpu_ratio = speedup(batched["llamacpp"], batched["transformers"], by="cpu")
        verdict = "[green]meets[/]" if ratio >= ENGINE_TARGET else "[red]misses[/]"
        console.print(
            f"llamacpp vs transformers, batched N={sequential_n}: {ratio:.2f}x tokens/s "
            f"({verdict} the {ENGINE_TARGET:g}x target), {cpu_ratio:.2f}x tokens per CPU-second",
            highlight=False,
        )
        report["speedup_tokens_per_s"]["llamacpp/transformers"] = round(ratio, 3)
        report["speedup_tokens_per_cpu_s"]["llamacpp/transformers"] = round(cpu_ratio, 3)
    for generator in generators.values():
        generator.backend.close()
    target = output or settings.run_dir / "bench" / "generation.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2))
    console.print(f"report: {target}")
