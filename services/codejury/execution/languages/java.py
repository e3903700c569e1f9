from codejury.execution.languages.base import (
    BUILD,
    MAIN,
    SRC,
    BatchCompiler,
    Language,
    java_file_stem,
)

JVM_FLAGS = ("-Xss64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")
# MultiPL-E's Java imports org.javatuples (Debian: libjavatuples-java); a missing jar on
# the class path is ignored by javac and java alike.
JAVATUPLES = "/usr/share/java/javatuples.jar"

# The javac JVM's flags, and the options every program compiles with (alone or batched).
JAVAC_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
JAVAC_OPTIONS = ("-encoding", "UTF-8", "-nowarn", "-cp", JAVATUPLES)

LANGUAGE = Language(
    name="java",
    aliases=(),
    extension="java",
    toolchain=("/usr/bin/javac", "/usr/bin/java"),
    install="apt-get install openjdk-17-jdk-headless libjavatuples-java",
    compile=("/usr/bin/javac", *(f"-J{f}" for f in JAVAC_JVM), *JAVAC_OPTIONS, "-d", BUILD, SRC),
    run=("/usr/bin/java", *JVM_FLAGS, "-ea", "-cp", f"{BUILD}:{JAVATUPLES}", MAIN),
    file_stem=java_file_stem,
    stop_sequences=("\n    }\n",),
    # javac's JVM start-up is most of a compile (~0.5 s): a batch starts it once.
    batch_compile=BatchCompiler(
        helper="CodejuryBatchCompile.java",
        build=("/usr/bin/javac", *(f"-J{f}" for f in JAVAC_JVM), "-d", BUILD, SRC),
        run=(
            "/usr/bin/java",
            *JAVAC_JVM,
            "-cp",
            "{helper}",
            "CodejuryBatchCompile",
            "{manifest}",
            BUILD,
        ),
        options=JAVAC_OPTIONS,
    ),
)
