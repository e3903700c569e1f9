"""Errors of deployment.

DeployError (CodeJuryError)
├── ChartNotFoundError (ConfigurationError)  no charts/codejury where it was looked for
├── ChartValuesError (InvalidArgumentError)  values.schema.json refused the values, or a
│                                            template failed on them
├── LockError                                an image's dependencies cannot be pinned
├── ImageBuildError                          a container image cannot be built here
└── LocalRunError                            a step of the podman kube play run failed
"""

from __future__ import annotations

from codejury.core.errors import CodeJuryError, ConfigurationError, InvalidArgumentError


class DeployError(CodeJuryError):
    """Base of the deployment errors."""


class ChartNotFoundError(DeployError, ConfigurationError):
    """The chart directory is not where it was looked for."""


class ChartValuesError(DeployError, InvalidArgumentError):
    """The values cannot be rendered: the message names each refused value."""


class LockError(DeployError):
    """An image's dependencies could not be resolved and pinned."""


class ImageBuildError(DeployError):
    """A step of building the images failed; the message names the step and the fix."""


class LocalRunError(DeployError):
    """A step of the local (podman kube play) run failed; the message names the step."""
