// Render LaTeX formulas with KaTeX and report which ones fail.
//
// stdin:  JSON {"formulas": [string, ...], "displayMode": bool}
// stdout: JSON [null | "error message", ...], one entry per formula, in order.
//
// Options: throwOnError makes unknown commands (e.g. \foo) a ParseError instead of red text;
// strict: "error" also rejects input that KaTeX accepts but LaTeX would not (\\ in display
// mode outside an environment, Unicode text in math mode, HTML extensions, ...), since our
// output must render in LaTeX as well as in KaTeX.
"use strict";
const path = require("path");

const root = process.env.MATDERIV_ROOT || path.resolve(__dirname, "..", "..");
let katex;
try {
  katex = require(require.resolve("katex", { paths: [root] }));
} catch (e) {
  process.stderr.write(`katex not found under ${root}/node_modules (run make install): ${e.message}\n`);
  process.exit(2);
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const req = JSON.parse(input);
  const out = req.formulas.map((s) => {
    try {
      katex.renderToString(s, {
        throwOnError: true,
        displayMode: !!req.displayMode,
        strict: "error",
        trust: false,
      });
      return null;
    } catch (e) {
      return String(e && e.message ? e.message : e);
    }
  });
  process.stdout.write(JSON.stringify(out));
});
