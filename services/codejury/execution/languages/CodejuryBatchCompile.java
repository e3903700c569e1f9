import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

/**
 * CodeJury's batch compile step for Java: many programs compiled in one JVM.
 *
 * <p>Starting javac costs about half a second of JVM start-up and class loading per program;
 * a batch pays it once and compiles the rest warm. Each program is compiled exactly as the
 * javac command line would (same options, its own output directory, its own messages).
 *
 * <p>Usage: {@code java CodejuryBatchCompile MANIFEST OUT_ROOT [javac options...]}. MANIFEST
 * has one {@code NAME<TAB>SOURCE} line per program; NAME's classes go to OUT_ROOT/NAME, its
 * messages to OUT_ROOT/NAME/.codejury-batch.log and "EXIT_CODE MILLISECONDS" to
 * OUT_ROOT/NAME/.codejury-batch.rc, written last: a program without it did not finish.
 */
public final class CodejuryBatchCompile {
    public static void main(String[] args) throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            System.err.println("no system Java compiler here (a JRE without jdk.compiler?)");
            System.exit(3);
        }
        List<String> lines = Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8);
        Path root = Paths.get(args[1]);
        List<String> options = Arrays.asList(args).subList(2, args.length);
        for (String line : lines) {
            if (line.isEmpty()) {
                continue;
            }
            String[] entry = line.split("\t", 2);
            Path out = root.resolve(entry[0]);
            List<String> argv = new ArrayList<>(options);
            argv.addAll(Arrays.asList("-d", out.toString(), entry[1]));
            ByteArrayOutputStream log = new ByteArrayOutputStream();
            long started = System.nanoTime();
            int code;
            try {
                code = javac.run(null, log, log, argv.toArray(new String[0]));
            } catch (RuntimeException | StackOverflowError e) {
                // what the javac launcher reports as "an exception has occurred in the compiler"
                e.printStackTrace(new PrintStream(log, true, StandardCharsets.UTF_8));
                code = 4;
            }
            long millis = (System.nanoTime() - started) / 1_000_000;
            Files.write(out.resolve(".codejury-batch.log"), log.toByteArray());
            Path partial = out.resolve(".codejury-batch.rc.partial");
            Files.write(partial, (code + " " + millis).getBytes(StandardCharsets.UTF_8));
            Files.move(partial, out.resolve(".codejury-batch.rc"), StandardCopyOption.ATOMIC_MOVE);
        }
    }
}
