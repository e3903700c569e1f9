from codejury.execution.languages.base import BUILD, NODE_PATH, SRC, Language

# Transpile-only with esbuild (milliseconds, versus about a second for tsc per program):
# type errors do not fail a run, as with ts-node --transpile-only.
TOOLS = "/opt/codejury/node_modules"

LANGUAGE = Language(
    name="typescript",
    aliases=("ts",),
    extension="ts",
    toolchain=("/usr/bin/node", f"{TOOLS}/.bin/esbuild"),
    install="npm install --prefix /opt/codejury esbuild (bin/setup does it)",
    compile=(
        f"{TOOLS}/.bin/esbuild",
        SRC,
        f"--outfile={BUILD}/main.js",
        "--format=cjs",
        "--platform=node",
        "--log-level=error",
    ),
    run=("/usr/bin/node", f"{BUILD}/main.js"),
    ro_paths=("/opt/codejury",),
    env={"NODE_PATH": NODE_PATH},
    stop_sequences=("\nfunction ", "\n/*", "\n//", "\nconsole.log"),
)
