"""The reward model on ONNX Runtime: an export made once per version, cached beside it.

``reranking.runtime=onnx`` scores with ONNX Runtime (CPU) instead of torch. The export
holds backbone and score head together (input ids, attention mask and, for BERT-like
models, token type ids in; one logit per row out) and is made on the first load, then
reused by every process that serves the version::

    <registry>/versions/<id>/model/                    the registered files (never touched)
    <registry>/versions/<id>/exports/onnx-fp32/        model.onnx, export.json
    <registry>/versions/<id>/exports/onnx-int8/        model.onnx, export.json

(``reranking.export_dir`` moves the ``exports`` folder elsewhere, one sub-folder per
version.) ``export.json`` records a fingerprint of the model files it was made from and
the SHA-256 of ``model.onnx``; an export whose record is missing or disagrees (other
weights, a truncated or edited file) is made again, with a log line saying why. Exports
are written under a temporary name and renamed into place under a file lock, so two
processes starting together export once and never read half a file. The registry's
manifest and model folder are not changed: the version's identity stays what it was.

- fp32: ``torch.onnx.export`` (the torch.export-based exporter); ONNX Runtime applies
  its graph optimizations when it loads the file. Scores equal torch's up to float32
  rounding (tested within ``FP32_TOLERANCE``).
- int8: ONNX Runtime's dynamic quantization of the fp32 export's matrix products (weights
  int8 per tensor, activations quantized per batch at run time; embeddings, pooler and
  score head stay fp32). Opt-in: scores move by a sizeable share of their spread on the
  models measured so far (docs/reranking.md), so picks can change; check a version with
  ``codejury bench reranker``'s agreement lines before serving it so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from codejury.core.cpus import runtime_threads
from codejury.core.logging import get_logger
from codejury.reranking.errors import CorruptVersionError, ExportError

log = get_logger(__name__)

EXPORT_FORMAT = 1
OPSET = 20
FP32_TOLERANCE = 1e-4  # absolute, scores of the same inputs, onnx fp32 vs torch
MODEL_FILE = "model.onnx"
RECORD_FILE = "export.json"
_SOURCE_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")
_CHUNK = 1 << 20


def export_root(model_dir: Path, *, version: str, export_dir: Path | None) -> Path:
    """Where ``version``'s exports live: beside its model folder, or under ``export_dir``."""
    return export_dir / version if export_dir is not None else model_dir.parent / "exports"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_fingerprint(model_dir: Path) -> str:
    """A hash of the files an export is made from (config and weights)."""
    digest = hashlib.sha256()
    for name in _SOURCE_FILES:
        path = model_dir / name
        if path.is_file():
            digest.update(f"{name}:{_sha256(path)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """``export.json``: what an export was made from, and the hash of what was written."""

    format: int
    quantize: str
    source: str
    onnx_sha256: str
    opset: int
    torch: str
    onnxruntime: str

    def to_json(self) -> str:
        return json.dumps(
            {name: getattr(self, name) for name in self.__slots__}, indent=2, sort_keys=True
        )


def _problem(entry: Path, *, quantize: str, source: str) -> str | None:
    """Why the export in ``entry`` cannot be used (None: it can)."""
    model, record_path = entry / MODEL_FILE, entry / RECORD_FILE
    if not model.is_file() or not record_path.is_file():
        return "missing"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable {RECORD_FILE} ({exc})"
    if not isinstance(record, dict):
        return f"unreadable {RECORD_FILE}"
    if record.get("format") != EXPORT_FORMAT or record.get("quantize") != quantize:
        return "made by another version of this code"
    if record.get("source") != source:
        return "made from other model files"
    if record.get("onnx_sha256") != _sha256(model):
        return f"{MODEL_FILE} does not match its recorded hash (corrupt or edited)"
    return None


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = (root / ".lock").open("w")
    except OSError as exc:
        raise ExportError(
            f"cannot write ONNX exports to {root} ({exc}): make it writable, or set "
            "reranking.export_dir (CODEJURY_RERANKING__EXPORT_DIR) to a writable folder"
        ) from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_export(
    model_dir: Path, tokenizer: Any, *, version: str, quantize: str, root: Path
) -> Path:
    """The path of a usable ``model.onnx`` for ``quantize`` ("none"/"int8"), made if needed."""
    source = source_fingerprint(model_dir)
    with _locked(root):
        return _ensure(
            model_dir, tokenizer, version=version, quantize=quantize, root=root, source=source
        )


def _ensure(
    model_dir: Path, tokenizer: Any, *, version: str, quantize: str, root: Path, source: str
) -> Path:
    entry = root / ("onnx-int8" if quantize == "int8" else "onnx-fp32")
    problem = _problem(entry, quantize=quantize, source=source)
    if problem is None:
        log.info("reward_model.onnx_cached", version=version, quantize=quantize, path=str(entry))
        return entry / MODEL_FILE
    if problem != "missing":
        log.warning("reward_model.onnx_rebuild", version=version, quantize=quantize, reason=problem)
    fp32 = None
    if quantize == "int8":  # made from the fp32 export, itself made first if need be
        fp32 = _ensure(
            model_dir, tokenizer, version=version, quantize="none", root=root, source=source
        )
    log.info(
        "reward_model.onnx_exporting",
        version=version,
        quantize=quantize,
        path=str(entry),
        note="once per version; later loads reuse it",
    )
    started = time.perf_counter()
    staging = root / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        target = staging / MODEL_FILE
        if fp32 is None:
            _export_fp32(model_dir, tokenizer, target, version=version)
        else:
            _quantize_int8(fp32, target)
        record = ExportRecord(
            format=EXPORT_FORMAT,
            quantize=quantize,
            source=source,
            onnx_sha256=_sha256(target),
            opset=OPSET,
            torch=_version("torch"),
            onnxruntime=_version("onnxruntime"),
        )
        (staging / RECORD_FILE).write_text(record.to_json() + "\n")
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "reward_model.onnx_exported",
        version=version,
        quantize=quantize,
        seconds=round(time.perf_counter() - started, 1),
    )
    return entry / MODEL_FILE


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Silence foreign tools' warnings and chatter ("" is the root logger, where ONNX
    Runtime's quantizer gives advice): their deprecations and steps are not ours to act on.
    """
    targets = [logging.getLogger(name or None) for name in loggers]
    levels = [target.level for target in targets]
    for target in targets:
        target.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for target, level in zip(targets, levels, strict=True):
            target.setLevel(level)


def _export_fp32(model_dir: Path, tokenizer: Any, target: Path, *, version: str) -> None:
    import torch
    from transformers import AutoConfig

    from codejury.reranking.model import load_torch_model

    model_config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    model_config.pad_token_id = tokenizer.pad_token_id
    # eager attention: plain matrix products and a softmax, which every ONNX Runtime
    # build runs (the SDPA path exports to ops that depend on the opset).
    model = load_torch_model(
        model_dir, version=version, model_config=model_config, attn_implementation="eager"
    )
    # Two rows of different lengths, so that padding is part of the traced example.
    example = tokenizer(
        ["def f(x):", "def g(items, n):\n    '''Sum.'''"],
        ["    return x", "    return sum(items) + n"],
        padding=True,
        return_tensors="pt",
    )
    names = list(example.keys())
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with _quiet("torch.onnx", "onnxscript", "onnx_ir"), torch.inference_mode():
            program = torch.onnx.export(
                model,  # its output without labels: logits (B, 1) alone
                (),
                kwargs={name: example[name] for name in names},
                input_names=names,
                output_names=["logits"],
                dynamic_shapes={name: {0: batch, 1: seq} for name in names},
                opset_version=OPSET,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
        if program is None:
            raise ExportError(f"version {version!r}: torch.onnx.export returned no program")
        model_proto = program.model_proto
        # The exporter's intermediate shapes can disagree with ONNX's own inference,
        # which the quantizer runs; ONNX Runtime infers them again on load.
        del model_proto.graph.value_info[:]
        import onnx

        onnx.save_model(model_proto, target)
    except ExportError:
        raise
    except Exception as exc:  # torch.export, onnxscript and onnx raise many types
        raise ExportError(
            f"version {version!r}: cannot export the model in {model_dir} to ONNX "
            f"({type(exc).__name__}: {exc}): serve it with reranking.runtime=torch"
        ) from exc


def _quantize_int8(fp32: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    try:
        with _quiet(""):  # the quantizer advises on the root logger
            quantize_dynamic(
                fp32, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
            )
    except Exception as exc:  # onnxruntime.quantization raises many types
        raise ExportError(
            f"cannot quantize {fp32} to int8 ({type(exc).__name__}: {exc}): serve it with "
            "reranking.quantize=none"
        ) from exc


class OnnxForward:
    """ONNX Runtime on an export: numpy batches in, one score per row out."""

    tensors = "np"

    def __init__(self, session: Any, *, name: str) -> None:
        self._session = session
        self._inputs = {i.name for i in session.get_inputs()}
        self.name = name

    def __call__(self, encoded: Any) -> list[float]:
        feeds = {name: value for name, value in encoded.items() if name in self._inputs}
        (logits,) = self._session.run(["logits"], feeds)  # (B, 1)
        return [float(v) for v in logits[:, 0].tolist()]


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = runtime_threads(threads) or 0  # 0: the physical cores
    options.inter_op_num_threads = 1
    # Idle threads sleep rather than spin: on shared cores, spinning slows other work
    # (the same reason the bench sets OMP_WAIT_POLICY=PASSIVE for torch).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_forward(
    model_dir: Path,
    tokenizer: Any,
    *,
    version: str,
    quantize: str,
    threads: int | None,
    export_dir: Path | None,
) -> OnnxForward:
    """An ONNX Runtime forward for ``version``, exporting first if no usable export exists."""
    missing = [name for name in ("onnxruntime", "onnx", "onnxscript") if not find_spec(name)]
    if missing:
        raise ExportError(
            f"reranking.runtime=onnx needs {', '.join(missing)}: install the `serve` extra "
            "(pip install 'codejury[serve]'), or set reranking.runtime=torch"
        )
    root = export_root(model_dir, version=version, export_dir=export_dir)
    path = ensure_export(model_dir, tokenizer, version=version, quantize=quantize, root=root)
    name = "onnx-int8" if quantize == "int8" else "onnx-fp32"
    try:
        return OnnxForward(_session(path, threads), name=name)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
        raise CorruptVersionError(
            f"version {version!r}: ONNX Runtime cannot load {path} ({type(exc).__name__}: "
            f"{exc}): delete {path.parent} to export it again"
        ) from exc
