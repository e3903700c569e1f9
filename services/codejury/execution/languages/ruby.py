from codejury.execution.languages.base import SRC, Language

LANGUAGE = Language(
    name="ruby",
    aliases=("rb",),
    extension="rb",
    toolchain=("/usr/bin/ruby",),
    install="apt-get install ruby",
    run=("/usr/bin/ruby", SRC),
    stop_sequences=("\nclass", "\ndef", "\n#", "\n\n"),
)
