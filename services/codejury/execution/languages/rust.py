from codejury.execution.languages.base import BUILD, SRC, Language

LANGUAGE = Language(
    name="rust",
    aliases=("rs",),
    extension="rs",
    toolchain=("/usr/bin/rustc",),
    install="apt-get install rustc",
    compile=(
        "/usr/bin/rustc",
        "--edition",
        "2021",
        "-C",
        "opt-level=1",
        "-A",
        "warnings",
        "-o",
        f"{BUILD}/main",
        SRC,
    ),
    run=(f"{BUILD}/main",),
    stop_sequences=("\n}",),
)
