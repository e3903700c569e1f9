"""The one place that talks to the Kubernetes API: plain JSON objects over the
``kubernetes`` client's REST layer (its auth, TLS and kubeconfig handling), no generated
models, so a custom resource and a Job are handled alike.

Errors are converted once, here: 404 -> ``NotFoundError``, 409 -> ``ConflictError``,
anything else (another status, a refused connection) -> ``ApiError``, all retryable.
Patches are JSON merge patches (RFC 7386): a None value removes the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from codejury_operator.errors import ApiError, ConflictError, CredentialsError, NotFoundError

_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Ref:
    """A resource collection (``name`` None) or one object in it."""

    api_version: str  # "v1", "batch/v1", "serving.kserve.io/v1beta1"
    plural: str
    namespace: str
    name: str | None = None

    def path(self, subresource: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{root}/namespaces/{self.namespace}/{self.plural}"
        if self.name is not None:
            path += f"/{self.name}"
            if subresource:
                path += f"/{subresource}"
        return path

    def named(self, name: str) -> Ref:
        return Ref(self.api_version, self.plural, self.namespace, name)


def load_credentials(config: kubernetes.client.Configuration) -> str:
    """Fill ``config`` from the in-cluster service account, else the kubeconfig; says which.

    Raises CredentialsError naming both places when neither has credentials (kopf would
    otherwise log a LoginError traceback from every task and keep running)."""
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
        return "in-cluster service account"
    except kubernetes.config.ConfigException as exc:
        in_cluster = str(exc)
    kubeconfig = os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
        return f"kubeconfig {kubeconfig}"
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise CredentialsError(
            f"no Kubernetes credentials: not in a cluster ({in_cluster.rstrip('.')}) and no "
            f"usable kubeconfig at {kubeconfig} ({exc}); run it in a pod with a service "
            "account, or set KUBECONFIG"
        ) from exc


class KubeClient:
    """JSON in, JSON out; every method raises only ``ApiError`` and its subclasses."""

    def __init__(
        self, api_client: kubernetes.client.ApiClient, *, timeout_s: float = _TIMEOUT_S
    ) -> None:
        self._api = api_client
        self._timeout_s = timeout_s

    @classmethod
    def connect(cls, server: str | None = None, *, timeout_s: float = _TIMEOUT_S) -> KubeClient:
        """``server`` (tests: an emulated API), else in-cluster, else the kubeconfig."""
        config = kubernetes.client.Configuration()
        if server is not None:
            config.host = server
        else:
            load_credentials(config)
        return cls(kubernetes.client.ApiClient(config), timeout_s=timeout_s)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # -- verbs -------------------------------------------------------------------------

    def get(self, ref: Ref) -> dict[str, Any]:
        return self._call("GET", ref.path())

    def find(self, ref: Ref) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(ref)
        except NotFoundError:
            return None

    def list(self, ref: Ref, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The collection's objects with all of ``labels`` (checked here too: a selector the
        server ignores must not widen the answer)."""
        query = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else {}
        items = self._call("GET", ref.path(), query=query).get("items") or []
        wanted = dict(labels or {})
        return [
            item
            for item in items
            if all(
                ((item.get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in wanted.items()
            )
        ]

    def create(self, ref: Ref, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", ref.path(), body=body)

    def create_if_absent(self, ref: Ref, body: Mapping[str, Any]) -> bool:
        """Create ``body`` in the collection ``ref``; False when it existed already."""
        try:
            self.create(ref, body)
        except ConflictError:
            return False
        return True

    def patch(
        self, ref: Ref, patch: Mapping[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        return self._call(
            "PATCH",
            ref.path(subresource),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def ensure(self, ref: Ref, body: Mapping[str, Any]) -> None:
        """Create the object ``ref`` names from ``body``, or merge-patch it to ``body``."""
        collection = Ref(ref.api_version, ref.plural, ref.namespace)
        if not self.create_if_absent(collection, body):
            self.patch(ref, body)

    def delete(self, ref: Ref, *, propagation: str = "Background") -> bool:
        """Delete the object; False when it was not there."""
        try:
            self._call("DELETE", ref.path(), body={"propagationPolicy": propagation})
        except NotFoundError:
            return False
        return True

    # -- the boundary ------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if query:
            path = f"{path}?{urlencode(dict(query))}"
        headers = {"Accept": "application/json", "Content-Type": content_type}
        where = f"{method} {path}"
        try:
            _, url, headers, payload, _ = self._api.param_serialize(
                method=method,
                resource_path=path,
                header_params=headers,
                body=None if body is None else dict(body),
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=self._timeout_s
            )
            response.read()  # type: ignore[no-untyped-call]
            status, text = response.status, (response.data or b"").decode("utf-8", "replace")
        except ApiException as exc:
            status, text = exc.status or 0, str(exc.body or exc.reason or exc)
        except Exception as exc:  # urllib3's connection errors and the like
            raise ApiError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            try:
                data = json.loads(text) if text else {}
            except ValueError as exc:
                raise ApiError(f"{where}: answered {status} with non-JSON {text[:200]!r}") from exc
            return data if isinstance(data, dict) else {}
        message = f"{where}: {status}: {_message(text)}"
        if status == 404:
            raise NotFoundError(message, status=status)
        if status == 409:
            raise ConflictError(message, status=status)
        raise ApiError(message, status=status)


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])[:300]
    return text[:300]
