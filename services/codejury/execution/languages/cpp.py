from codejury.execution.languages.base import BUILD, SRC, Language

# {pch} is replaced by the executor with the include dir holding a precompiled
# bits/stdc++.h for exactly these flags (see execution/pch.py); without one it is dropped.
FLAGS = ("-std=c++17", "-O1")

LANGUAGE = Language(
    name="cpp",
    aliases=("c++", "cxx"),
    extension="cpp",
    toolchain=("/usr/bin/g++",),
    install="apt-get install g++",
    compile=("/usr/bin/g++", *FLAGS, "{pch}", SRC, "-o", f"{BUILD}/main"),
    run=(f"{BUILD}/main",),
    stop_sequences=("\n}",),
)
