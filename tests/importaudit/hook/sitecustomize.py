"""Records which top-level modules a Python process imports, and who imported each, for
the demo's import audit (tests/importaudit).

On PYTHONPATH with IMPORT_AUDIT_DIR set, every Python process (the demo and the services
it starts; forked children write to their parent's file) appends its command line, then
``<module> <importer>`` for each top-level module the first time it is imported (the
importer: the top-level package of the code that ran the import statement), and
``=<module>`` for each of the project's own modules, to ``<dir>/<pid>.txt``. Lines are
written as they happen, so a killed process leaves its record.
"""

import os
import sys

_DIR = os.environ.get("IMPORT_AUDIT_DIR")
_MACHINERY = ("importlib", "_frozen_importlib", "sitecustomize")
_PROJECT = ("codejury", "codejury_operator")


def _importer() -> str:
    frame = sys._getframe(1)  # the hook's own frame is skipped below (sitecustomize)
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        if not name.startswith(_MACHINERY):
            return name.split(".", 1)[0] or "?"
        frame = frame.f_back
    return "?"


if _DIR:
    _fd = os.open(
        os.path.join(_DIR, f"{os.getpid()}.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
    )
    os.write(_fd, ("argv " + "\0".join(sys.orig_argv) + "\n").encode())
    _seen: set[str] = set()

    def _record(event: str, args: tuple[object, ...]) -> None:
        if event != "import":
            return
        name = str(args[0])
        top = name.split(".", 1)[0]
        if top not in _seen:
            _seen.add(top)
            os.write(_fd, f"{top} {_importer()}\n".encode())
        if top in _PROJECT and name not in _seen:  # which of the project's modules ran
            _seen.add(name)
            os.write(_fd, f"={name}\n".encode())

    sys.addaudithook(_record)
