from codejury.execution.languages.base import SRC, Language

LANGUAGE = Language(
    name="ruby",
    aliases=("rb",),
    extension="rb",
    toolchain=("/usr/bin/ruby",),
    install="apt-get install ruby",
    # -rset: Ruby 3.2 autoloads Set, Debian 12's Ruby 3.1 does not (MBXP's Ruby uses it).
    run=("/usr/bin/ruby", "-rset", SRC),
    stop_sequences=("\nclass", "\ndef", "\n#", "\n\n"),
)
