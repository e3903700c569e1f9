from codejury.execution.languages.base import BUILD, SRC, Language

LANGUAGE = Language(
    name="csharp",
    aliases=("cs", "c#"),
    extension="cs",
    toolchain=("/usr/bin/mcs", "/usr/bin/mono"),
    install="apt-get install mono-mcs",
    compile=(
        "/usr/bin/mcs",
        "-nowarn:219,414,162,168",
        "-d:DEBUG",  # as MultiPL-E's harness: Debug.Assert is compiled in
        "-r:System.Numerics.dll",
        f"-out:{BUILD}/main.exe",
        SRC,
    ),
    run=("/usr/bin/mono", "--debug", f"{BUILD}/main.exe"),
    stop_sequences=("\n    }\n",),
)
