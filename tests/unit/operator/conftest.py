"""The operator's tests: an in-memory Kubernetes API (kmock) with the kinds they touch."""

from __future__ import annotations

from collections.abc import Iterator

import kmock
import pytest
from codejury_operator.kube import KubeClient


@pytest.fixture()
def api(kmock: kmock.KubernetesEmulator) -> Iterator[KubeClient]:
    for key, kind in (
        ("codejury.io/v1alpha1/selftrainingruns", "SelfTrainingRun"),
        ("batch/v1/jobs", "Job"),
        ("v1/pods", "Pod"),
        ("v1/events", "Event"),
        ("v1/configmaps", "ConfigMap"),
        ("serving.kserve.io/v1beta1/inferenceservices", "InferenceService"),
        # kopf waits for these two to be discoverable (its "backbone") before it watches;
        # with scanning disabled it neither lists nor watches them.
        ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition"),
        ("v1/namespaces", "Namespace"),
    ):
        kmock.resources[key] = kmock.ResourceInfo(
            kind=kind,
            namespaced=True,
            verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
            subresources={"status"},
        )
    # A short timeout: the first request after an in-process kopf stops can meet a pooled
    # connection kmock no longer answers on; urllib3 then retries on a new one.
    client = KubeClient.connect(server=str(kmock.url).rstrip("/"), timeout_s=1.0)
    yield client
    client.close()
