from codejury.execution.languages.base import BUILD, SRC, Language

# `go test` style programs (MultiPL-E, HumanEval-X) are detected by the executor's
# assembly step and built with `go test -c`; plain programs with `go build`.
LANGUAGE = Language(
    name="go",
    aliases=("golang",),
    extension="go",
    toolchain=("/usr/bin/go",),
    install="apt-get install golang-go",
    compile=("/usr/bin/go", "build", "-o", f"{BUILD}/main", SRC),
    run=(f"{BUILD}/main",),
    env={
        "GOCACHE": "/tmp/gocache",
        "GOPATH": "/tmp/gopath",
        "GO111MODULE": "off",
        "CGO_ENABLED": "0",
    },
    stop_sequences=("\nfunc", "struct", "\n// "),
)
