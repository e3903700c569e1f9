from codejury.execution.languages.base import NODE_PATH, NODE_TOOLS, SRC, Language

LANGUAGE = Language(
    name="javascript",
    aliases=("js", "node"),
    extension="js",
    toolchain=("/usr/bin/node",),
    install="apt-get install nodejs node-lodash; js-md5 from npm (bin/setup)",
    run=("/usr/bin/node", SRC),
    env={"NODE_PATH": NODE_PATH},
    ro_paths=(NODE_TOOLS,),
    stop_sequences=("\nfunction ", "\n/*", "\n//", "\nconsole.log"),
)
