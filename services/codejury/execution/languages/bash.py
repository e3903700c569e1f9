from codejury.execution.languages.base import SRC, Language

LANGUAGE = Language(
    name="bash",
    aliases=("sh", "shell"),
    extension="sh",
    toolchain=("/usr/bin/bash",),
    install="apt-get install bash",
    run=("/usr/bin/bash", SRC),
    stop_sequences=("\n}",),
)
