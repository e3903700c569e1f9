"""Generation tests need transformers (tiny models and no hub: see tests/conftest.py)."""

import pytest

pytest.importorskip("transformers", reason="the transformers backend needs the demo/train extra")
