// CodeJury's batch compile step for TypeScript: many programs type-checked in one node.
//
// Starting tsc costs about two seconds of CPU a program, most of it parsing TypeScript's
// own library declarations (lib.esnext, @types/node). A batch pays that once: every
// program is still its own ts.Program (its own globals, its own errors), compiled with
// exactly the options of the tsc command line, but the declaration files' parsed source
// is shared between them (they are read-only; the checker never changes a SourceFile).
//
// Usage: node codejury_tsc_batch.js MANIFEST OUT_ROOT [tsc options...]. MANIFEST has one
// NAME<TAB>SOURCE line per program; NAME's JavaScript goes to OUT_ROOT/NAME, tsc's messages
// (as `tsc --pretty false` prints them) to OUT_ROOT/NAME/.codejury-batch.log and
// "EXIT_CODE MILLISECONDS" to OUT_ROOT/NAME/.codejury-batch.rc, written last: a program
// without it did not finish. Exit codes are tsc's: 0, 1 (errors, nothing emitted),
// 2 (errors, JavaScript emitted anyway).
"use strict";

const fs = require("fs");
const path = require("path");
const ts = require("typescript");

const [manifest, root, ...options] = process.argv.slice(2);
const parsed = ts.parseCommandLine(options);
if (parsed.errors.length) {
  process.stderr.write(ts.formatDiagnostics(parsed.errors, formatHost()));
  process.exit(3);
}
const declarations = new Map(); // file name and language version -> parsed SourceFile

function formatHost() {
  return {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: ts.sys.getCurrentDirectory,
    getNewLine: () => ts.sys.newLine,
  };
}

function hostFor(compilerOptions) {
  const host = ts.createCompilerHost(compilerOptions);
  const read = host.getSourceFile;
  host.getSourceFile = (fileName, version, onError, shouldCreate) => {
    if (!fileName.endsWith(".d.ts")) {
      return read.call(host, fileName, version, onError, shouldCreate);
    }
    const key = `${JSON.stringify(version)}\0${fileName}`;
    if (!declarations.has(key)) {
      declarations.set(key, read.call(host, fileName, version, onError, shouldCreate));
    }
    return declarations.get(key);
  };
  return host;
}

function compile(source, out) {
  const compilerOptions = { ...parsed.options, outDir: out };
  const program = ts.createProgram([source], compilerOptions, hostFor(compilerOptions));
  const emitted = program.emit();
  const diagnostics = ts.sortAndDeduplicateDiagnostics([
    ...ts.getPreEmitDiagnostics(program),
    ...emitted.diagnostics,
  ]);
  const log = ts.formatDiagnostics(diagnostics, formatHost());
  const errors = diagnostics.some((d) => d.category === ts.DiagnosticCategory.Error);
  return { code: !errors ? 0 : emitted.emitSkipped ? 1 : 2, log };
}

for (const line of fs.readFileSync(manifest, "utf8").split("\n")) {
  if (!line) continue;
  const [name, source] = line.split("\t");
  const out = path.join(root, name);
  const started = process.hrtime.bigint();
  let result;
  try {
    result = compile(source, out);
  } catch (error) {
    // what tsc would end with: its own crash, reported, and a failed compile
    result = { code: 4, log: String((error && error.stack) || error) };
  }
  const millis = Number(process.hrtime.bigint() - started) / 1e6;
  fs.writeFileSync(path.join(out, ".codejury-batch.log"), result.log);
  const partial = path.join(out, ".codejury-batch.rc.partial");
  fs.writeFileSync(partial, `${result.code} ${millis.toFixed(1)}`);
  fs.renameSync(partial, path.join(out, ".codejury-batch.rc"));
}
