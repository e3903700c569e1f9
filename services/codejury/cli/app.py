"""The ``codejury`` command line. Settings are built here, once, and passed down."""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from codejury.core.errors import CodeJuryError, ConfigurationError
from codejury.core.extras import missing_extra_message
from codejury.core.logging import configure_logging, get_logger
from codejury.core.processes import die_with_parent
from codejury.core.settings import Settings, load_settings
from codejury.core.signals import set_on_signals

if TYPE_CHECKING:
    from codejury.bus.consumer import EventConsumer
    from codejury.core.tracing import Tracing

app = typer.Typer(
    name="codejury",
    help="CodeJury: sample N programs, run them in a sandbox, let a learned reranker pick one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve_app = typer.Typer(help="Run one of the services in the foreground.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks that report ratios measured side by side.", no_args_is_help=True
)
app.add_typer(serve_app, name="serve")
app.add_typer(bench_app, name="bench")


def _output_width() -> int | None:
    """160 columns where no standard stream is a terminal and COLUMNS is unset (a CI log,
    `nohup`, `| tee`): rich's 80 there cut the demo's table cells to "10…". None: rich
    asks the terminal."""
    if "COLUMNS" in os.environ:
        return None
    for descriptor in (0, 1, 2):  # where rich itself looks for a terminal's size
        try:
            os.get_terminal_size(descriptor)
            return None
        except OSError:
            continue
    return 160


console = Console(width=_output_width())
err_console = Console(stderr=True, width=_output_width())
log = get_logger(__name__)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback built (once per process)."""
    settings: Settings = ctx.obj
    return settings


def data_dir(settings: Settings, override: Path | None = None) -> Path:
    """The benchmark data folder: ``--data-dir``, else the setting, else ../shared/data
    next to the working directory or the source checkout."""
    configured = override if override is not None else settings.data_dir
    if configured is not None:
        if not configured.is_dir():
            raise ConfigurationError(
                f"data_dir (CODEJURY_DATA_DIR or --data-dir) {configured} is not a directory"
            )
        return configured
    checkout = Path(__file__).resolve().parents[3]
    for candidate in (Path.cwd() / ".." / "shared" / "data", checkout / ".." / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    raise ConfigurationError(
        "no benchmark data: set CODEJURY_DATA_DIR (or --data-dir) to a folder with mbxp/, "
        "humaneval-x/ and multipl-e/ (see the README's Data section)"
    )


def stop_signal() -> threading.Event:
    """An event SIGTERM and SIGINT set: a service waits on it, then shuts down in order.
    A service a codejury process started also gets SIGTERM when that parent dies."""
    stop = threading.Event()
    set_on_signals(stop)  # not Event.set in the handler: a second signal would deadlock
    die_with_parent()
    return stop


class StageDiedError(CodeJuryError):
    """A service's Kafka stage loop ended with an error: the process must not stay up."""


@dataclass
class StageWatch:
    """What became of a stage's loop: ``failure`` is set when it died."""

    name: str
    failure: BaseException | None = None

    def raise_if_died(self) -> None:
        if self.failure is not None:
            raise StageDiedError(
                f"the Kafka stage {self.name} stopped: {self.failure!r}; the service exits so "
                "that its supervisor restarts it (it resumes from the last committed offset)"
            ) from self.failure


@contextlib.contextmanager
def running_stage(
    consumer: EventConsumer | None, *, join_timeout_s: float, stop: threading.Event
) -> Iterator[StageWatch]:
    """Run a service's Kafka stage beside its gRPC server for the ``with`` block; on the
    way out it finishes its in-flight event and commits (``None``: no stage).

    A loop that dies sets ``stop``: the service then shuts down (health NOT_SERVING, the
    server drains) and the caller ends it with ``watch.raise_if_died()``, exit 1, instead of
    a process that looks READY while every request waits out its deadline."""
    watch = StageWatch(consumer.name if consumer is not None else "")
    if consumer is None:
        yield watch
        return

    def loop() -> None:
        try:
            consumer.run()
        except BaseException as exc:
            log.exception("stage.died", stage=consumer.name)
            watch.failure = exc
            stop.set()

    thread = threading.Thread(target=loop, name=consumer.name, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        consumer.request_stop()
        thread.join(timeout=join_timeout_s)


def start_metrics(settings: Settings, *, multiprocess_dir: Path | None = None) -> None:
    """Serve this process's Prometheus metrics when ``metrics.port`` is set (the endpoint
    lives as long as the process: a daemon thread)."""
    if settings.metrics.port is None:
        return
    from codejury.core.metrics import serve_metrics

    served = serve_metrics(
        settings.metrics.host, settings.metrics.port, multiprocess_dir=multiprocess_dir
    )
    err_console.print(
        f"metrics on http://{settings.metrics.host}:{served.port}/metrics", highlight=False
    )


def start_tracing(settings: Settings, service: str) -> Tracing:
    """This process's tracing for component ``service`` (``tracing.exporter``; off by
    default). It lives as long as the process: the SDK flushes what is left at exit."""
    from codejury.core.tracing import open_tracing

    return open_tracing(settings.tracing, service, tls=settings.tls)


def quiet_libraries(settings: Settings) -> None:
    """KServe and uvicorn log every request at INFO, transformers reports every weight it
    initialises: keep all that for DEBUG runs."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if settings.log_level != "DEBUG":
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        for name in ("kserve", "kserve.trace", "uvicorn.access", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)


def quiet_run(settings: Settings) -> None:
    """Long commands with a progress bar (demo, eval, up): the services log to their own
    files, so this process shows only warnings unless a level was asked for."""
    if settings.log_level == "INFO":
        configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    quiet_libraries(settings)


@app.callback()
def _root(
    ctx: typer.Context,
    run_dir: Annotated[
        Path | None, typer.Option(help="State, logs and artefacts (env CODEJURY_RUN_DIR).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR (env CODEJURY_LOG_LEVEL).")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="console or json (env CODEJURY_LOG_FORMAT).")
    ] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if run_dir is not None:
        overrides["run_dir"] = run_dir
    if log_level is not None:
        overrides["log_level"] = log_level.upper()
    if log_format is not None:
        overrides["log_format"] = log_format
    settings = load_settings(overrides)
    configure_logging(settings)
    # `kill -USR1 PID` writes every thread's stack to stderr (the service's log): how a
    # process that does not stop, or stalls, shows where (ServiceProcess.stop sends it
    # before its SIGKILL).
    # (Not where stderr has no descriptor: a test's CliRunner.)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    ctx.obj = settings


# typer >= 0.26 vendors click as typer._click, whose exceptions are not the click
# package's: take them from where typer's own BadParameter comes from.
_click_errors = importlib.import_module(typer.BadParameter.__module__)


def read_input(path: Path, param: str) -> str:
    """The text of a file the user named (``-``: standard input); a file that cannot be
    read is a usage error naming the parameter, not a traceback."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise typer.BadParameter(f"cannot read {path}: {why}", param_hint=param) from exc


def main() -> None:
    """Entry point: usage errors as the usual usage line; every known failure (settings,
    a missing optional extra, a file the OS refuses) as one clear line; a traceback only
    for bugs."""
    try:
        code = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except _click_errors.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigurationError as exc:
        _fail(exc, 2)
    except CodeJuryError as exc:
        _fail(exc, 1)
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        _fail(exc, 1, message)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        _fail(exc, 1, f"{exc.filename}: {exc.strerror}" if exc.filename else None)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(exc: BaseException, code: int, message: str | None = None) -> NoReturn:
    """One line on stderr (the message escaped: ``codejury[train]`` is not markup), and exit."""
    err_console.print(
        f"[red]error:[/] {escape(message or str(exc))}", soft_wrap=True, highlight=False
    )
    sys.exit(code)
