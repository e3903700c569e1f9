from codejury.execution.languages.base import SRC, Language

LANGUAGE = Language(
    name="php",
    aliases=(),
    extension="php",
    toolchain=("/usr/bin/php",),
    install="apt-get install php-cli",
    run=("/usr/bin/php", "-d", "display_errors=stderr", SRC),
    stop_sequences=("\nfunction", "\n?>", "\n//", "\n#"),
)
