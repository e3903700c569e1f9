from codejury.execution.languages.base import SRC, Language

# Debian's interpreter, not a pyenv one under /root that the sandbox user cannot read.
LANGUAGE = Language(
    name="python",
    aliases=("py", "python3"),
    extension="py",
    toolchain=("/usr/bin/python3",),
    install="apt-get install python3",
    run=("/usr/bin/python3", "-I", SRC),  # -I: no user site, no PYTHON* env, no cwd on path
    stop_sequences=("\ndef ", "\n#", "\nif ", "\nclass ", "\nprint("),
)
