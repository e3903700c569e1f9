from codejury.execution.languages.base import SRC, Language

LANGUAGE = Language(
    name="lua",
    aliases=(),
    extension="lua",
    toolchain=("/usr/bin/lua5.4",),
    install="apt-get install lua5.4 lua-unit",
    run=("/usr/bin/lua5.4", SRC),
    stop_sequences=("\nlocal", "\nfunction", "\n--", "\n\n"),
)
