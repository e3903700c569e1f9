from codejury.execution.languages.base import SRC, Language

LANGUAGE = Language(
    name="perl",
    aliases=("pl",),
    extension="pl",
    toolchain=("/usr/bin/perl",),
    install="apt-get install perl libtest-deep-perl libdata-compare-perl",
    run=("/usr/bin/perl", SRC),
    stop_sequences=("\nsub", "\n#", "\n\n"),
)
