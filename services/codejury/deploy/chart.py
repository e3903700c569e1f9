"""The chart as data: load it, merge values files, render offline, validate the objects.

Rendering is Helm's own (the Go SDK behind ``helm_python``): the same templates, the same
``values.schema.json`` check a ``helm install`` does. Validation checks core objects with
``kubernetes-validate`` at a pinned Kubernetes version and custom resources against their
CRDs' OpenAPI schemas: the chart's own (``crds/``) and upstream ones (KServe, Strimzi,
KEDA, prometheus-operator) from a folder of CRD files.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codejury.deploy import SOURCE_ROOT
from codejury.deploy.errors import ChartNotFoundError, ChartValuesError

KUBE_VERSION = "1.33.0"  # the version core objects are checked against
CHART_DIR = SOURCE_ROOT / "charts" / "codejury"
PROFILES_DIR = CHART_DIR / "profiles"


def chart_dir(path: Path | None = None) -> Path:
    found = path or CHART_DIR
    if not (found / "Chart.yaml").is_file():
        raise ChartNotFoundError(
            f"no Helm chart at {found}: run from a source checkout of CodeJury or pass --chart"
        )
    return found


def profile_path(name: str) -> Path:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ChartValuesError(f"no profile {name!r}: use one of {', '.join(known)}")
    return path


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, maps merged key by key (as helm -f merges files)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(files: Iterable[Path]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in files:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ChartValuesError(f"values file {path}: {exc}") from exc
        if not isinstance(loaded, Mapping):
            raise ChartValuesError(f"values file {path}: a map of values expected")
        values = deep_merge(values, loaded)
    return values


@dataclass(frozen=True)
class Rendered:
    """The rendered chart: every object, and the template each came from."""

    objects: list[dict[str, Any]]
    sources: list[str]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def to_yaml(self) -> str:
        return yaml.safe_dump_all(self.objects, sort_keys=False)


def render(
    values: Mapping[str, Any] | None = None,
    *,
    chart: Path | None = None,
    release: str = "codejury",
    namespace: str = "codejury",
) -> Rendered:
    """Render offline; ChartValuesError carries Helm's message, which names the value."""
    import helm_python  # the deploy extra

    loaded = helm_python.Chart.load(chart_dir(chart))
    try:
        manifests = loaded.render(
            dict(values or {}), name=release, namespace=namespace, is_install=True
        )
    except (helm_python.HelmValuesError, helm_python.HelmRenderError) as exc:
        raise ChartValuesError(" ".join(str(exc).split())) from exc
    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    for source in sorted(manifests):
        if not source.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for document in yaml.safe_load_all(manifests[source]):
            if document:
                objects.append(document)
                sources.append(source)
    return Rendered(objects, sources)


def chart_crds(chart: Path | None = None) -> list[dict[str, Any]]:
    """The CRDs the chart installs (its ``crds/`` folder)."""
    return _crds_in([chart_dir(chart) / "crds"])


def _crds_in(folders: Sequence[Path]) -> list[dict[str, Any]]:
    crds = []
    for folder in folders:
        for path in sorted(folder.rglob("*.yaml")):
            crds += _crds_of_file(path, path.stat().st_mtime_ns)
    return crds


@functools.cache
def _crds_of_file(path: Path, mtime_ns: int) -> list[dict[str, Any]]:
    """Parsed once per file version: the upstream CRDs are megabytes of YAML."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = yaml.load_all(path.read_text(), Loader=loader)
    return [d for d in documents if d and d.get("kind") == "CustomResourceDefinition"]


def _crd_schemas(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the version's openAPIV3Schema."""
    schemas = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            api_version = f"{spec['group']}/{version['name']}"
            schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate(
    objects: Iterable[Mapping[str, Any]],
    *,
    crd_folders: Sequence[Path] = (),
    chart: Path | None = None,
    kube_version: str = KUBE_VERSION,
) -> list[str]:
    """Every problem found, one line each (empty: all objects valid).

    A custom resource whose CRD is in none of ``crd_folders`` nor the chart is a problem
    too: nothing may pass unchecked."""
    import jsonschema
    import kubernetes_validate

    schemas = _crd_schemas([*chart_crds(chart), *_crds_in(crd_folders)])
    problems: list[str] = []
    for obj in objects:
        what = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        if "/" in key[0] and not key[0].split("/")[0].endswith(".k8s.io") and key in schemas:
            errors = sorted(
                jsonschema.Draft7Validator(schemas[key]).iter_errors(obj), key=lambda e: e.path
            )
            problems += [f"{what}: {'.'.join(map(str, e.path))}: {e.message}" for e in errors]
            continue
        try:
            kubernetes_validate.validate(dict(obj), kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{what}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{what}: no schema for {key[0]} {key[1]} (no CRD given for it)")
    return problems
