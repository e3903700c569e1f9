import re
from dataclasses import replace

from codejury.execution.languages.base import BUILD, SRC, Language

# GOPATH mode on Debian's packaged sources: testify (golang-github-stretchr-testify-dev)
# lives in /usr/share/gocode, read-only under /usr. The build cache is shared between
# compiles (the executor mounts it at compile_cache): testify alone takes seconds to build.
ENV = {
    "GOPATH": "/usr/share/gocode",
    "GO111MODULE": "off",
    "GOCACHE": "/tmp/gocache",
    "CGO_ENABLED": "0",
}

# A `go test` file (MultiPL-E, HumanEval-X): `func TestX(t *testing.T)` at top level.
_TEST_FUNC = re.compile(r"^func\s+Test\w*\s*\(\s*\w+\s+\*testing\.T\s*\)", re.MULTILINE)


def is_test_program(program: str) -> bool:
    return bool(_TEST_FUNC.search(program))


def file_stem(program: str) -> str:
    """`go test` only reads files named *_test.go."""
    return "main_test" if is_test_program(program) else "main"


def variant(program: str) -> Language:
    """Test files build with `go test -c` (vet included, as `go test` runs it); the test
    binary runs every Test function and exits 1 when one fails."""
    return TEST if is_test_program(program) else LANGUAGE


LANGUAGE = Language(
    name="go",
    aliases=("golang",),
    extension="go",
    toolchain=("/usr/bin/go",),
    install="apt-get install golang-go golang-github-stretchr-testify-dev",
    compile=("/usr/bin/go", "build", "-o", f"{BUILD}/main", SRC),
    run=(f"{BUILD}/main",),
    env=ENV,
    file_stem=file_stem,
    compile_cache="/tmp/gocache",
    variant=variant,
    stop_sequences=("\nfunc", "struct", "\n// "),
)
TEST = replace(LANGUAGE, compile=("/usr/bin/go", "test", "-c", "-o", f"{BUILD}/main", SRC))
