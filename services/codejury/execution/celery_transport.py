"""The embedded deployment's folder broker and folder result backend, with files that
appear whole.

The embedded deployment's Celery broker is a folder (``filesystem://``). Kombu's own
transport creates a message file, then locks and writes it; a consumer listing the folder
in between moves the still-empty file away, fails to decode it, and the worker dies with
"Unrecoverable error: JSONDecodeError" (seen in a test run at ~100 tasks/s). Here a message
is written under a name no queue matches and renamed into place, which is atomic.

Celery's ``file://`` result backend has the same race: it opens the result file with
``"wb"`` and writes, while the caller polls ``get`` every 10 ms. A result large enough to
take more than one write (a run whose program printed 60 KB) was read half-written and
failed its whole batch with "Unterminated string" (seen in CI). ``ResultFolder`` writes the
same way, under a partial name, and renames.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from celery.backends.filesystem import FilesystemBackend
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import ensure_bytes
from kombu.utils.json import dumps

#: The broker URL scheme ``make_celery_app`` uses for the embedded folder broker.
SCHEME = "codejury-filesystem"


class Channel(filesystem.Channel):
    # kombu's own base classes disagree on this signature; this is filesystem.Channel's
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: `_get` matches the text after the first dot against
        # "<queue>.msg", which "partial-<uuid>" never is.
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4()}")
        try:
            with open(partial, "wb", buffering=0) as handle:
                handle.write(dumps(payload).encode())  # type: ignore[no-untyped-call]
            os.rename(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> str:
    """Make ``codejury-filesystem://`` name this transport; returns the scheme."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
    return SCHEME


class ResultFolder(FilesystemBackend):  # type: ignore[misc]
    """Celery's ``file://`` result backend, with each result file renamed into place."""

    def set(self, key: bytes, value: Any) -> None:
        # the same folder: a rename across file systems would not be atomic
        partial = self.sep.join((self.path, b".partial-" + uuid.uuid4().hex.encode()))
        try:
            with self.open(partial, "wb") as outfile:
                outfile.write(ensure_bytes(value))  # type: ignore[no-untyped-call]
            os.replace(partial, self._filename(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise


def result_backend_url(folder: str) -> str:
    """The ``result_backend`` setting that stores results in ``folder`` through
    ``ResultFolder`` (Celery reads ``<class>+<url>``)."""
    return f"{__name__}:ResultFolder+file://{folder}"
