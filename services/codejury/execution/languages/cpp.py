import re
from dataclasses import replace

from codejury.execution.languages.base import BUILD, SRC, Language

# {pch} is replaced by the executor with the include dir holding a precompiled
# bits/stdc++.h for exactly these flags (see execution/pch.py); without one it is dropped.
# No -O, as mxeval, CodeGeeX and MultiPL-E compile: canonical solutions that read
# uninitialised locals (MBXP's MBCPP/150 and /340) pass there at -O0 and fail at -O1.
FLAGS = ("-std=c++17", "-O0")
# Flowing off the end of a non-void function is undefined behaviour that often "returns"
# the right bool by luck (MultiPL-E's empty completions pass that way): trap it instead.
# The precompiled header stays valid with these.
CHECKS = ("-fsanitize=return", "-fno-sanitize-recover=return")

# HumanEval-X's CPP/162 hashes with OpenSSL's MD5 (its harness links -lcrypto for it).
_OPENSSL = re.compile(r"^\s*#\s*include\s*<openssl/", re.MULTILINE)


def variant(program: str) -> Language:
    return OPENSSL if _OPENSSL.search(program) else LANGUAGE


LANGUAGE = Language(
    name="cpp",
    aliases=("c++", "cxx"),
    extension="cpp",
    toolchain=("/usr/bin/g++",),
    install="apt-get install g++ libssl-dev libboost-dev",
    compile=("/usr/bin/g++", *FLAGS, *CHECKS, "{pch}", SRC, "-o", f"{BUILD}/main"),
    run=(f"{BUILD}/main",),
    variant=variant,
    stop_sequences=("\n}",),
)
OPENSSL = replace(LANGUAGE, compile=(*LANGUAGE.compile, "-lcrypto"))
