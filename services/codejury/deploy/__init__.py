"""Deployment: render and check the Helm chart (charts/codejury) without a helm binary,
build the images (images/), run the chart under podman kube play."""

from pathlib import Path

#: The source checkout the chart, the Containerfiles and their locks live in.
SOURCE_ROOT = Path(__file__).resolve().parents[3]
