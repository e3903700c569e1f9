from codejury.execution.languages.base import SRC, Language

LANGUAGE = Language(
    name="javascript",
    aliases=("js", "node"),
    extension="js",
    toolchain=("/usr/bin/node",),
    install="apt-get install nodejs",
    run=("/usr/bin/node", SRC),
    stop_sequences=("\nfunction ", "\n/*", "\n//", "\nconsole.log"),
)
