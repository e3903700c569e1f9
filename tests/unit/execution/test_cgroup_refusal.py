"""Where the sandbox cannot create cgroups (an unprivileged pod mounts the cgroup tree
read-only), the worker refuses at start in one line that names the fix; it used to start
and die on the first run with an OSError traceback."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from codejury.execution import cgroups
from codejury.execution.errors import SandboxUnavailableError


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EPERM])
def test_an_unwritable_cgroup_tree_is_refused_naming_the_privileged_pod(
    code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids cpu\n")  # a v2 root
    monkeypatch.setattr(cgroups, "detect_version", lambda root=tmp_path: "v2")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(code, "refused", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(SandboxUnavailableError) as refused:
        cgroups.check_writable("codejury", root=tmp_path)
    message = str(refused.value)
    assert "privileged pod" in message and "worker.privileged" in message
    assert str(tmp_path / "codejury") in message


def test_other_errors_are_not_dressed_up_as_a_missing_privilege(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "detect_version", lambda root=tmp_path: "v2")

    def full(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "no space", str(self))

    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(OSError) as raised:
        cgroups.check_writable("codejury", root=tmp_path)
    assert not isinstance(raised.value, SandboxUnavailableError)
