"""TypeScript, judged as MultiPL-E judges it: ``tsc --target esnext``, where a type error
fails the program (COMPILE_ERROR), then node. ``TRANSPILE_ONLY`` is the other way
(``execution.typescript_check = none``): esbuild strips the types in milliseconds and only
a syntax error fails, as with ts-node --transpile-only.

tsc starts slowly (about 2 s of CPU a program, most of it reading its own library
declarations), so a batch's programs are checked in one node process
(``codejury_tsc_batch.js``), each as its own program with exactly the command line's
options and messages, the declarations read once.

The options beyond MultiPL-E's ``--target esnext``: CommonJS output (node runs the file as
a script; MBXP's tests ``import`` node's ``assert``), node's module resolution with the
npm prefix as the base (MBXP's prompts import mathjs and heap-js), node's type
declarations (``@types/node``), and ``--skipLibCheck``: MultiPL-E's tests declare
``require: any`` themselves, which @types/node declares too; skipping the check of the
declaration files lets the program's declaration stand, as it does where no @types/node
is installed.
"""

from codejury.execution.languages.base import BUILD, NODE_PATH, SRC, BatchCompiler, Language

TOOLS = "/opt/codejury/node_modules"
TSC_OPTIONS = (
    "--target",
    "esnext",
    "--module",
    "commonjs",
    "--moduleResolution",
    "node",
    "--baseUrl",
    TOOLS,
    "--typeRoots",
    f"{TOOLS}/@types",
    "--types",
    "node",
    "--skipLibCheck",
    "--pretty",
    "false",
)
_NODE = "/usr/bin/node"
_STOP = ("\nfunction ", "\n/*", "\n//", "\nconsole.log")

LANGUAGE = Language(
    name="typescript",
    aliases=("ts",),
    extension="ts",
    toolchain=(_NODE, f"{TOOLS}/.bin/tsc"),
    install="npm install --prefix /opt/codejury typescript@5 @types/node@20 (bin/setup does it)",
    compile=(_NODE, f"{TOOLS}/typescript/bin/tsc", *TSC_OPTIONS, "--outDir", BUILD, SRC),
    run=(_NODE, f"{BUILD}/main.js"),
    ro_paths=("/opt/codejury",),
    env={"NODE_PATH": NODE_PATH},
    stop_sequences=_STOP,
    compile_timeout_s=60.0,
    batch_compile=BatchCompiler(
        helper="codejury_tsc_batch.js",
        build=("/usr/bin/cp", SRC, BUILD),
        run=(_NODE, "{helper}/codejury_tsc_batch.js", "{manifest}", BUILD),
        options=TSC_OPTIONS,
    ),
)

TRANSPILE_ONLY = Language(
    name="typescript",
    aliases=("ts",),
    extension="ts",
    toolchain=(_NODE, f"{TOOLS}/.bin/esbuild"),
    install="npm install --prefix /opt/codejury esbuild (bin/setup does it)",
    compile=(
        f"{TOOLS}/.bin/esbuild",
        SRC,
        f"--outfile={BUILD}/main.js",
        "--format=cjs",
        "--platform=node",
        "--log-level=error",
    ),
    run=(_NODE, f"{BUILD}/main.js"),
    ro_paths=("/opt/codejury",),
    env={"NODE_PATH": NODE_PATH},
    stop_sequences=_STOP,
)
