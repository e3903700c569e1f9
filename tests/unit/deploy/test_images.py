"""The images' locks and build commands (the build itself: tests/integration/deploy)."""

from __future__ import annotations

from importlib.metadata import requires
from pathlib import Path

import pytest
from codejury.deploy import images, podman
from codejury.deploy.errors import ImageBuildError
from codejury.deploy.locks import LOCKS, canonical, lock_path, read_pins
from packaging.requirements import Requirement
from packaging.version import Version


def _direct_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """codejury's requirements with ``extras`` (extra "" stands for the base ones)."""
    wanted = []
    for line in requires("codejury") or []:
        requirement = Requirement(line)
        marker = requirement.marker
        applies = marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras))
        if applies and canonical(requirement.name) != "codejury":
            wanted.append(requirement)
    return wanted


@pytest.mark.parametrize("spec", LOCKS, ids=lambda s: s.image)
def test_each_lock_pins_what_pyproject_asks_for(spec: object) -> None:
    """A stale lock (pyproject changed, `codejury deploy lock` not rerun) fails here."""
    from codejury.deploy.locks import LockSpec

    assert isinstance(spec, LockSpec)
    pins = read_pins(lock_path(spec.image))
    if spec.on_top_of:
        pins = {**read_pins(lock_path(spec.on_top_of)), **pins}
    assert all(len(p.sha256) == 64 for p in pins.values()), "every pin carries its sha256"
    for requirement in _direct_requirements(spec.extras):
        pin = pins.get(canonical(requirement.name))
        missing = f"{requirement} is not in {lock_path(spec.image).name}: codejury deploy lock"
        assert pin is not None, missing
        version = Version(pin.version)
        # torch's local build label (+cpu) satisfies ==2.13.0
        stale = f"{requirement}, {lock_path(spec.image).name} pins {pin.version}: rerun"
        assert requirement.specifier.contains(Version(version.public), prereleases=True), stale


def test_the_trainer_lock_adds_to_the_runtime_and_overrides_nothing() -> None:
    runtime = read_pins(lock_path("runtime"))
    trainer = read_pins(lock_path("trainer"))
    assert trainer and not set(trainer) & set(runtime)
    assert {"trl", "peft", "datasets", "pyarrow"} <= set(trainer)


def test_the_runtime_build_uses_the_local_torch_wheel_and_the_ca_as_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    monkeypatch.setattr(images, "LOCAL_WHEELS", wheels)
    ca = tmp_path / "ca.pem"
    runtime, _, trainer, _ = images.IMAGES
    command = images.build_command(runtime, ca, torch="cpu", model_wheels=False)
    assert ["--secret", f"id=ca,src={ca}"] == command[command.index("--secret") :][:2]
    assert f"{wheels}:{wheels}:ro" in command
    assert "TORCH_INDEX=" in command and f"FIND_LINKS={wheels}" in command
    assert "MODEL_WHEELS=0" in command
    gpu = images.build_command(trainer, ca, torch="cu128", model_wheels=True)
    assert "TORCH=cu128" in gpu and f"RUNTIME={runtime.ref()}" in gpu
    assert not any(str(wheels) in part for part in gpu)


def test_without_a_local_wheel_the_build_uses_pytorchs_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "LOCAL_WHEELS", tmp_path / "absent")
    runtime = images.IMAGES[0]
    command = images.build_command(runtime, tmp_path / "ca", torch="cpu", model_wheels=True)
    assert not any(part.startswith(("TORCH_INDEX=", "FIND_LINKS=")) for part in command)


def test_missing_tools_and_unknown_images_are_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ImageBuildError, match="no image nosuch: build one of runtime, sandbox"):
        images.select(["nosuch"])
    assert [s.name for s in images.select(["trainer", "runtime"])] == ["runtime", "trainer"]
    monkeypatch.setattr(podman.shutil, "which", lambda name: None)
    with pytest.raises(ImageBuildError, match="apt-get install podman runc"):
        podman.preflight()
    monkeypatch.setattr(podman.shutil, "which", lambda name: None if name == "runc" else "/x")
    with pytest.raises(ImageBuildError, match="apt-get install runc"):
        podman.preflight()


def test_the_locks_are_resolved_for_the_images_python() -> None:
    """Markers are evaluated for Debian's python3 (3.11.2), not the resolving one: redis
    needs async-timeout below 3.11.3, and a lock made on 3.11.7 left it out (the worker
    then could not import redis)."""
    from codejury.deploy.locks import IMAGE_PYTHON

    for spec in LOCKS:
        assert f"Python {IMAGE_PYTHON}" in lock_path(spec.image).read_text().splitlines()[1]
    assert "async-timeout" in read_pins(lock_path("sandbox"))
    assert "async-timeout" in read_pins(lock_path("runtime"))
