// Writes the deployable CloudFront Function, cdn/cloudfront/function.js, from its one
// definition, cdn/cloudfront/src/function.js: comment lines, indentation and blank lines go, and
// spaces that separate no two words are dropped (outside string, template and regular
// expression literals); a header line naming the source is added, and the result must fit
// CloudFront's 10 KB function size limit. Lines stay lines, so no statement changes meaning.
// The source keeps every comment on a line of its own (a line with code and `//` is refused).
//
//   node cdn/cloudfront/build.mjs           write function.js, print its size
//   node cdn/cloudfront/build.mjs --check   fail unless function.js is up to date and fits

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** CloudFront Functions' quota on a function's code, in bytes. */
export const SIZE_LIMIT = 10240;

const here = dirname(fileURLToPath(import.meta.url));
export const SOURCE = join(here, "src", "function.js");
export const OUTPUT = join(here, "function.js");

/** The deployable text of `source` (throws on a line the line-based pass cannot strip). */
export function build(source) {
  const out = [];
  source.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (t === "" || t.startsWith("//")) return;
    if (t.includes("//") || t.includes("/*")) {
      throw new Error(`src/function.js:${i + 1}: a comment must sit on a line of its own`);
    }
    // Import lines stay as written (the runtime wants `import cf from 'cloudfront'` verbatim).
    out.push(t.startsWith("import ") ? t : squeeze(t, i + 1));
  });
  // The imports stay first: the runtime wants `import cf from 'cloudfront'` at the top.
  const imports = out.filter((l) => l.startsWith("import "));
  const rest = out.filter((l) => !l.startsWith("import "));
  const header = "// leaktrace A/B selector, cloudfront-js-2.0 viewer-request; generated from src/function.js by build.mjs";
  return [...imports, header, ...rest].join("\n") + "\n";
}

const WORD = /[A-Za-z0-9_$]/;

/**
 * One line without the spaces that separate no two words: string, template and regular
 * expression literals are copied as they are. A `/` starts a regular expression where an
 * operand is expected (after an operator, a bracket, a comma or `return`).
 */
function squeeze(line, lineNo) {
  let out = "";
  let i = 0;
  let pendingSpace = false;
  const lastSignificant = () => out.trimEnd().slice(-1);
  while (i < line.length) {
    const ch = line[i];
    if (ch === " " || ch === "\t") {
      pendingSpace = true;
      i++;
      continue;
    }
    const prev = out.slice(-1);
    let token;
    if (ch === "'" || ch === '"' || ch === "`") {
      let j = i + 1;
      while (j < line.length && line[j] !== ch) j += line[j] === "\\" ? 2 : 1;
      if (j >= line.length) throw new Error(`src/function.js:${lineNo}: a literal must end on its line`);
      token = line.slice(i, j + 1);
    } else if (ch === "/" && (out === "" || /[(,=:[!&|?{};+\-*%<>~^]$/.test(lastSignificant()) || /\breturn$/.test(out))) {
      let j = i + 1;
      let inClass = false;
      while (j < line.length && (line[j] !== "/" || inClass)) {
        if (line[j] === "\\") j++;
        else if (line[j] === "[") inClass = true;
        else if (line[j] === "]") inClass = false;
        j++;
      }
      j++;
      while (j < line.length && /[a-z]/.test(line[j])) j++;
      token = line.slice(i, j);
    } else {
      token = ch;
    }
    // A space stays between two word characters, and between two operators that would fuse.
    if (pendingSpace && prev !== "") {
      const a = prev;
      const b = token[0];
      const fuse = (WORD.test(a) && WORD.test(b)) || (/[+\-]/.test(a) && a === b) || (a === "/" && b === "/");
      if (fuse) out += " ";
    }
    pendingSpace = false;
    out += token;
    i += token.length;
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = build(readFileSync(SOURCE, "utf8"));
  const bytes = Buffer.byteLength(text);
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(OUTPUT, "utf8");
    } catch {
      // missing: reported below
    }
    if (current !== text) {
      console.error("cdn/cloudfront/function.js is not up to date: run node cdn/cloudfront/build.mjs");
      process.exit(1);
    }
  } else {
    writeFileSync(OUTPUT, text);
  }
  console.log(`cdn/cloudfront/function.js: ${bytes} bytes (limit ${SIZE_LIMIT})`);
  if (bytes > SIZE_LIMIT) {
    console.error(`over CloudFront's function size limit by ${bytes - SIZE_LIMIT} bytes`);
    process.exit(1);
  }
}
