from codejury.execution.languages.base import BUILD, MAIN, SRC, Language, java_file_stem

JVM_FLAGS = ("-Xss64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")
# MultiPL-E's Java imports org.javatuples (Debian: libjavatuples-java); a missing jar on
# the class path is ignored by javac and java alike.
JAVATUPLES = "/usr/share/java/javatuples.jar"

LANGUAGE = Language(
    name="java",
    aliases=(),
    extension="java",
    toolchain=("/usr/bin/javac", "/usr/bin/java"),
    install="apt-get install openjdk-17-jdk-headless libjavatuples-java",
    compile=(
        "/usr/bin/javac",
        "-J-XX:+UseSerialGC",
        "-J-XX:TieredStopAtLevel=1",
        "-encoding",
        "UTF-8",
        "-nowarn",
        "-cp",
        JAVATUPLES,
        "-d",
        BUILD,
        SRC,
    ),
    run=("/usr/bin/java", *JVM_FLAGS, "-ea", "-cp", f"{BUILD}:{JAVATUPLES}", MAIN),
    file_stem=java_file_stem,
    stop_sequences=("\n    }\n",),
)
