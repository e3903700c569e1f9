import re
from dataclasses import replace

from codejury.execution.languages.base import BUILD, SRC, Language

# The crates HumanEval-X's declarations import (`use rand::Rng; use regex::Regex; use md5;`),
# prebuilt by bin/setup from Debian's librust-*-dev sources. rustc only opens an --extern
# when a program uses that crate, so programs that do not compile without them too.
CRATES = "/opt/codejury/rust"
EXTERN = ("rand", "regex", "md5")

# HumanEval-X's tests are a `#[cfg(test)]` module: they run under `rustc --test`
# (its harness runs them with `cargo test`); MultiPL-E's tests assert in `fn main`.
_TESTS = re.compile(r"#\[(?:cfg\()?test\)?\]")


def variant(program: str) -> Language:
    return TEST if _TESTS.search(program) else LANGUAGE


LANGUAGE = Language(
    name="rust",
    aliases=("rs",),
    extension="rs",
    toolchain=("/usr/bin/rustc",),
    install="apt-get install rustc (the crates: bin/setup)",
    compile=(
        "/usr/bin/rustc",
        "--edition",
        "2021",
        "-C",
        "opt-level=1",
        "-A",
        "warnings",
        "-L",
        f"dependency={CRATES}/deps",
        *(
            arg
            for crate in EXTERN
            for arg in ("--extern", f"{crate}={CRATES}/extern/lib{crate}.rlib")
        ),
        "-o",
        f"{BUILD}/main",
        SRC,
    ),
    run=(f"{BUILD}/main",),
    ro_paths=(CRATES,),
    variant=variant,
    stop_sequences=("\n}",),
)
TEST = replace(LANGUAGE, compile=(LANGUAGE.compile[0], "--test", *LANGUAGE.compile[1:]))
