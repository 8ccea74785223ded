import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface PackEntry {
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

/** `npm pack --json` in the repository (a dry run unless `destination` is given). */
function pack(destination?: string): PackEntry {
  const args = [
    "pack",
    "--json",
    ...(destination === undefined ? ["--dry-run"] : ["--pack-destination", destination]),
  ];
  const out = execFileSync("npm", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return (JSON.parse(out) as PackEntry[])[0] as PackEntry;
}

describe("the npm package", () => {
  test("ships what users run: no compiled tests, test support, harness or benchmarks", () => {
    const paths = pack().files.map((file) => file.path);
    const shipped = new Set(paths);
    for (const needed of [
      "bin/paxos.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/cli/main.js",
      "README.md",
    ])
      assert.ok(shipped.has(needed), `${needed} is in the package`);
    // Every entry point of package.json's "exports" is in it.
    const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      exports: Record<string, { types: string; default: string }>;
    };
    for (const entry of Object.values(manifest.exports)) {
      assert.ok(shipped.has(entry.default.replace(/^\.\//, "")), entry.default);
      assert.ok(shipped.has(entry.types.replace(/^\.\//, "")), entry.types);
    }
    const unwanted = paths.filter((path) =>
      /\.test\.|(^|\/)test-util\.|^dist\/(test-support|harness|fuzz|bench)\//.test(path),
    );
    assert.deepEqual(unwanted, []);
  });

  test("the packed tarball runs: the command and every export load without the files left out", () => {
    const dir = mkdtempSync(join(tmpdir(), "paxos-pack-test-"));
    try {
      const { filename } = pack(dir);
      execFileSync("tar", ["-xzf", join(dir, filename), "-C", dir]);
      const installed = join(dir, "package");
      // The dependencies as installed in the repository (no registry here).
      symlinkSync(join(ROOT, "node_modules"), join(installed, "node_modules"));
      const help = spawnSync(process.execPath, [join(installed, "bin/paxos.js"), "cluster", "--help"], {
        encoding: "utf8",
      });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /Usage: paxos cluster/);
      const sim = spawnSync(process.execPath, [join(installed, "bin/paxos.js"), "sim", "--seed", "1"], {
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(sim.status, 0, sim.stderr);
      assert.match(sim.stdout, /trace hash [0-9a-f]{16}/);
      const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
        exports: Record<string, { default: string }>;
      };
      const imports = Object.values(manifest.exports)
        .map((entry) => `await import(${JSON.stringify(join(installed, entry.default))});`)
        .join("\n");
      const loaded = spawnSync(process.execPath, ["--input-type=module", "-e", imports], {
        encoding: "utf8",
      });
      assert.equal(loaded.status, 0, loaded.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the README and docs link only files inside the repository, and each one exists", () => {
    const pages = [
      "README.md",
      "CONTRIBUTING.md",
      ...readdirSync(join(ROOT, "docs"))
        .filter((name) => name.endsWith(".md"))
        .map((name) => `docs/${name}`),
    ];
    const problems: string[] = [];
    for (const page of pages) {
      const text = readFileSync(join(ROOT, page), "utf8");
      // Markdown links and images with a relative target, and relative paths in code spans.
      const targets = [
        ...[...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string),
        ...[...text.matchAll(/`(\.\.?\/[^`\s]+)`/g)].map((m) => m[1] as string),
      ].filter((target) => !/^[a-z]+:|^#/.test(target));
      for (const target of targets) {
        const path = resolve(dirname(join(ROOT, page)), target.replace(/#.*$/, ""));
        if (relative(ROOT, path).startsWith(".."))
          problems.push(`${page}: ${target} is outside the repository`);
        else if (!existsSync(path)) problems.push(`${page}: ${target} does not exist`);
      }
    }
    assert.deepEqual(problems, []);
  });
});
