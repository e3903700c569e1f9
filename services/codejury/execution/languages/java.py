from codejury.execution.languages.base import BUILD, MAIN, SRC, Language, java_file_stem

JVM_FLAGS = ("-Xss64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")

LANGUAGE = Language(
    name="java",
    aliases=(),
    extension="java",
    toolchain=("/usr/bin/javac", "/usr/bin/java"),
    install="apt-get install default-jdk-headless",
    compile=(
        "/usr/bin/javac",
        "-J-XX:+UseSerialGC",
        "-J-XX:TieredStopAtLevel=1",
        "-encoding",
        "UTF-8",
        "-nowarn",
        "-d",
        BUILD,
        SRC,
    ),
    run=("/usr/bin/java", *JVM_FLAGS, "-ea", "-cp", BUILD, MAIN),
    file_stem=java_file_stem,
    stop_sequences=("\n    }\n",),
)
