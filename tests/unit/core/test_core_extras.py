"""The module -> extra table the CLI names in its missing-dependency error, checked
against the project's own requirements so the two cannot drift apart."""

from __future__ import annotations

import pytest
from codejury.core.extras import EXTRA_OF_MODULE, missing_extra_message

from tests.importaudit import distributions_of, requirement_closure


@pytest.mark.parametrize(("module", "extra"), sorted(EXTRA_OF_MODULE.items()))
def test_each_module_comes_with_the_extra_named_for_it(module: str, extra: str) -> None:
    provided_by = distributions_of(module)
    assert provided_by, f"{module} is not installed in the development venv"
    assert set(provided_by) & requirement_closure([f"codejury[{extra}]"]), (
        f"pip install 'codejury[{extra}]' does not install {module} ({provided_by})"
    )


def test_the_message_names_the_module_the_extra_and_the_fix() -> None:
    exc = ModuleNotFoundError("No module named 'trl.trainer'", name="trl.trainer")
    message = missing_extra_message(exc)
    assert message is not None
    assert "'trl'" in message and "'train' extra" in message
    assert "pip install 'codejury[train]'" in message and "bin/setup" in message


def test_an_unknown_module_is_not_a_setup_gap() -> None:
    assert missing_extra_message(ModuleNotFoundError("x", name="no_such_thing")) is None
    assert missing_extra_message(ModuleNotFoundError("x")) is None
