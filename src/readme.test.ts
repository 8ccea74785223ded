import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

// The README's examples (```js example blocks) must run as written against the built package.
const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const examples = [...readme.matchAll(/```js example\n([\s\S]*?)```/g)].map((m) => m[1] as string);
const entry = fileURLToPath(new URL("./index.js", import.meta.url));

test("the README has examples", () => {
  assert.ok(examples.length >= 3);
});

examples.forEach((code, index) => {
  test(`README example ${index + 1} runs and prints what its comments say`, () => {
    const dir = mkdtempSync(join(tmpdir(), "paxos-readme-"));
    try {
      const file = join(dir, "example.mjs");
      // `from "paxos"` and `from "paxos/<part>"` (the package's exports) name the built files.
      const resolved = code
        .replaceAll('from "paxos"', `from ${JSON.stringify(entry)}`)
        .replace(
          /from "paxos\/(\w+)"/g,
          (_, part: string) =>
            `from ${JSON.stringify(fileURLToPath(new URL(`./${part}/index.js`, import.meta.url)))}`,
        );
      writeFileSync(file, resolved);
      const run = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 30_000 });
      assert.equal(run.status, 0, run.stderr);
      const expected = [...code.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((m) => m[1] as string);
      const lines = run.stdout.trim().split("\n");
      assert.equal(lines.length, expected.length, run.stdout);
      expected.forEach((comment, i) => {
        const line = lines[i] as string;
        if (comment.startsWith("true") || comment.startsWith("false"))
          assert.equal(line, comment.split(":")[0]);
        else if (comment.startsWith("names two disjoint"))
          assert.match(line, /phase-1 quorum \{[\d,]+\} and phase-2 quorum \{[\d,]+\}/);
        else assert.equal(line, comment);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
