/**
 * The core's rules, enforced by reading its sources: it imports nothing but its own modules (no
 * `node:` modules, no packages), and it touches no clock, no ambient randomness, no timers, no console,
 * no process. Comments are stripped first, so a doc comment that *mentions* `Date` or `console` is
 * fine; strings are blanked for the identifier check, so an error message naming `process` is fine.
 *
 * The test runs from dist/core, so the sources are found relative to it: ../../src/core/.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";

const SOURCE_DIR = new URL("../../src/core/", import.meta.url);

function coreSources(): { name: string; text: string }[] {
  return readdirSync(SOURCE_DIR)
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts"))
    .sort()
    .map((name) => ({ name, text: readFileSync(new URL(name, SOURCE_DIR), "utf8") }));
}

/**
 * Splits TypeScript source into code and literals, well enough for this check: line and block
 * comments, '...' and "..." strings, template literals with nested `${ ... }` code, and regular
 * expression literals (recognised by the token before the slash). Returns two views of the source,
 * both with comments replaced by spaces (newlines kept, so offsets and line numbers still match):
 * - `withStrings`: string contents kept, for reading import specifiers;
 * - `codeOnly`: string and template contents blanked too, for looking for forbidden identifiers.
 */
function stripSource(source: string): { withStrings: string; codeOnly: string } {
  const keep: string[] = [];
  const code: string[] = [];
  const blank = (ch: string) => (ch === "\n" ? "\n" : " ");
  const emit = (ch: string, inLiteral: boolean) => {
    keep.push(ch);
    code.push(inLiteral ? blank(ch) : ch);
  };
  const emitComment = (ch: string) => {
    keep.push(blank(ch));
    code.push(blank(ch));
  };
  // Each entry is the brace depth inside a `${` of a template literal that is still open.
  const templateStack: number[] = [];
  let braceDepth = 0;
  let lastSignificant = "";
  let i = 0;
  const n = source.length;
  const readTemplateBody = () => {
    // At the character after an opening backtick or after the `}` closing a substitution.
    while (i < n) {
      const ch = source[i] as string;
      if (ch === "\\") {
        emit(ch, true);
        if (i + 1 < n) emit(source[i + 1] as string, true);
        i += 2;
        continue;
      }
      if (ch === "`") {
        emit(ch, false);
        i++;
        lastSignificant = "`";
        return;
      }
      if (ch === "$" && source[i + 1] === "{") {
        emit("$", false);
        emit("{", false);
        i += 2;
        templateStack.push(braceDepth);
        braceDepth++;
        lastSignificant = "{";
        return;
      }
      emit(ch, true);
      i++;
    }
  };
  while (i < n) {
    const ch = source[i] as string;
    const next = source[i + 1];
    if (ch === "/" && next === "/") {
      while (i < n && source[i] !== "\n") emitComment(source[i++] as string);
      continue;
    }
    if (ch === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? n : end + 2;
      while (i < stop) emitComment(source[i++] as string);
      continue;
    }
    if (ch === '"' || ch === "'") {
      emit(ch, false);
      i++;
      while (i < n && source[i] !== ch && source[i] !== "\n") {
        if (source[i] === "\\" && i + 1 < n) emit(source[i++] as string, true);
        emit(source[i++] as string, true);
      }
      if (i < n) emit(source[i++] as string, false);
      lastSignificant = ch;
      continue;
    }
    if (ch === "`") {
      emit(ch, false);
      i++;
      readTemplateBody();
      continue;
    }
    if (ch === "/" && (lastSignificant === "" || /[(,=:[!&|?{};+\-*%<>~^]$/.test(lastSignificant))) {
      // A regular expression literal: blank its body like a string.
      emit(ch, false);
      i++;
      let inClass = false;
      while (i < n && source[i] !== "\n") {
        const c = source[i] as string;
        if (c === "\\" && i + 1 < n) {
          emit(c, true);
          emit(source[i + 1] as string, true);
          i += 2;
          continue;
        }
        if (c === "[") inClass = true;
        else if (c === "]") inClass = false;
        else if (c === "/" && !inClass) break;
        emit(c, true);
        i++;
      }
      if (i < n && source[i] === "/") emit(source[i++] as string, false);
      lastSignificant = "regex";
      continue;
    }
    if (ch === "{") braceDepth++;
    if (ch === "}") {
      if (templateStack.length > 0 && templateStack[templateStack.length - 1] === braceDepth - 1) {
        templateStack.pop();
        braceDepth--;
        emit(ch, false);
        i++;
        readTemplateBody();
        continue;
      }
      braceDepth--;
    }
    emit(ch, false);
    i++;
    if (!/\s/.test(ch)) {
      // Identifiers and keywords count as one token; `return /x/` is a regex, `a / b` is not.
      if (/[\w$]/.test(ch)) {
        let j = keep.length - 1;
        let word = "";
        while (j >= 0 && /[\w$]/.test(keep[j] as string)) word = (keep[j--] as string) + word;
        lastSignificant = /^(return|typeof|case|do|else|in|of|new|delete|void|throw|yield|await)$/.test(word)
          ? "("
          : "word";
      } else {
        lastSignificant = ch;
      }
    }
  }
  return { withStrings: keep.join(""), codeOnly: code.join("") };
}

/** Every module specifier a source imports or re-exports, statically or dynamically. */
function importSpecifiers(withStrings: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^;]*?\bfrom\s*["']([^"']*)["']/g,
    /\bimport\s*["']([^"']*)["']/g,
    /\bimport\s*\(\s*["']([^"']*)["']/g,
    /\brequire\s*\(\s*["']([^"']*)["']/g,
  ];
  for (const pattern of patterns) {
    for (const match of withStrings.matchAll(pattern)) found.push(match[1] as string);
  }
  return found;
}

/** Forbidden ambient capabilities: clocks, randomness, timers, console, process, and ways around them. */
const FORBIDDEN: readonly { name: string; pattern: RegExp }[] = [
  { name: "Date", pattern: /(?<![.\w$])Date\b/ },
  { name: "Math.random", pattern: /(?<![.\w$])Math\s*(?:\.\s*random\b|\[)/ },
  { name: "setTimeout", pattern: /(?<![.\w$])setTimeout\b/ },
  { name: "setInterval", pattern: /(?<![.\w$])setInterval\b/ },
  { name: "setImmediate", pattern: /(?<![.\w$])setImmediate\b/ },
  { name: "queueMicrotask", pattern: /(?<![.\w$])queueMicrotask\b/ },
  { name: "console", pattern: /(?<![.\w$])console\b/ },
  { name: "process", pattern: /(?<![.\w$])process\b/ },
  { name: "performance", pattern: /(?<![.\w$])performance\b/ },
  // Not in the rule's wording, but each would be a way around it.
  { name: "globalThis", pattern: /(?<![.\w$])globalThis\b/ },
  { name: "require", pattern: /(?<![.\w$])require\s*\(/ },
  { name: "eval", pattern: /(?<![.\w$])eval\s*\(/ },
];

function violations(source: string): string[] {
  const { withStrings, codeOnly } = stripSource(source);
  const found: string[] = [];
  for (const specifier of importSpecifiers(withStrings)) {
    if (!specifier.startsWith("./") || specifier.slice(2).includes("/")) found.push(`imports "${specifier}"`);
  }
  const lines = codeOnly.split("\n");
  lines.forEach((line, index) => {
    for (const { name, pattern } of FORBIDDEN) {
      if (pattern.test(line)) found.push(`line ${index + 1} uses ${name}: ${line.trim()}`);
    }
  });
  return found;
}

describe("the purity check itself", () => {
  it("ignores words in comments and strings, and sees them in code", () => {
    const clean = [
      "/** Uses no Date, no console, no process.env. */",
      "// setTimeout would be wrong here",
      'const message = "console.log and Math.random() and process";',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: sample source for the checker
      "const t = `no Date here, but ${count} and ${`nested ${deep}`}`;",
      "const re = /Date|console/g;",
      "const x = a / b / c; // performance",
      "this.process(); options.console; foo.Date;",
      "const updateDate = 1; const processed = 2;",
    ].join("\n");
    assert.deepEqual(violations(clean), []);
    const dirty = [
      "const now = Date.now();",
      "const r = Math.random();",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: sample source for the checker
      "const s = `${console.log(1)}`;",
      "const t = setTimeout(f, 1);",
      "if (process.env.X) {}",
      'const m = Math["random"];',
    ].join("\n");
    assert.deepEqual(
      violations(dirty).map((v) => v.split(":")[0]),
      [
        "line 1 uses Date",
        "line 2 uses Math.random",
        "line 3 uses console",
        "line 4 uses setTimeout",
        "line 5 uses process",
        "line 6 uses Math.random",
      ],
    );
  });

  it("finds every kind of import, including type-only ones, and allows only siblings", () => {
    const source = [
      'import { a } from "./a.js";',
      'import type { B } from "node:fs";',
      'export * from "./c.js";',
      'import "fast-check";',
      'const m = await import("node:os");',
      'import { d } from "../d.js";',
      'import { e } from "./sub/e.js";',
      "import {\n  f,\n  g,\n} from './f.js';",
    ].join("\n");
    assert.deepEqual(importSpecifiers(stripSource(source).withStrings).sort(), [
      "../d.js",
      "./a.js",
      "./c.js",
      "./f.js",
      "./sub/e.js",
      "fast-check",
      "node:fs",
      "node:os",
    ]);
    assert.deepEqual(violations(source), [
      'imports "node:fs"',
      'imports "../d.js"',
      'imports "./sub/e.js"',
      'imports "fast-check"',
      'imports "node:os"',
    ]);
  });
});

describe("src/core is pure", () => {
  const sources = coreSources();

  it("finds the core's sources (so the checks below are not vacuous)", () => {
    const names = sources.map((s) => s.name);
    for (const expected of [
      "acceptor.ts",
      "ballot.ts",
      "learner.ts",
      "proposer.ts",
      "quorum.ts",
      "replica.ts",
    ]) {
      assert.ok(names.includes(expected), `expected ${expected} among ${names.join(", ")}`);
    }
    assert.ok(!names.some((name) => name.endsWith(".test.ts")), "test files are excluded");
  });

  for (const { name, text } of sources) {
    it(`${name} imports only sibling core modules that exist`, () => {
      const { withStrings } = stripSource(text);
      for (const specifier of importSpecifiers(withStrings)) {
        assert.ok(
          specifier.startsWith("./") && !specifier.slice(2).includes("/"),
          `${name} imports "${specifier}"`,
        );
        assert.ok(specifier.endsWith(".js"), `${name}: relative import "${specifier}" needs a .js suffix`);
        const sibling = new URL(specifier.replace(/\.js$/, ".ts"), SOURCE_DIR);
        assert.ok(existsSync(sibling), `${name} imports "${specifier}", which has no source`);
      }
    });

    it(`${name} uses no clock, ambient randomness, timers, console, process or performance`, () => {
      const found = violations(text).filter((v) => !v.startsWith("imports"));
      assert.deepEqual(found, [], `${name}:\n${found.join("\n")}`);
    });
  }
});
