import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MemoryFileSystem, WalStorage } from "../storage/index.js";
import {
  DATA_DIR_MESSAGES,
  type DataDirEvent,
  type DataDirFileSystem,
  type OpenDataDirOptions,
  openDataDir,
  REJOIN_STEPS,
  type RejoinStep,
  rejoinTempDir,
} from "./data-dir.js";

/** Runs `body` with a new temporary directory, removed afterwards. */
async function inTempDir(body: (temp: string) => Promise<void>): Promise<void> {
  const temp = mkdtempSync(join(tmpdir(), "paxos-data-dir-test-"));
  try {
    await body(temp);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

/** Opens `dir` as a process would, closing the storage again; returns what it decided. */
async function openOnce(dir: string | undefined, options: Partial<OpenDataDirOptions> = {}) {
  const events: DataDirEvent[] = [];
  const opened = await openDataDir({
    dir,
    isNew: false,
    onLostState: "rejoin",
    createLog: (logDir) => new WalStorage({ dir: logDir }),
    nowMs: 1_000,
    onEvent: (event) => events.push(event),
    ...options,
  });
  if (opened.ok) await opened.value.storage.close();
  return { opened, events, messages: events.map((event) => event.message) };
}

/** A log in `dir` with two promises in it, the first of which is then damaged (a flipped byte). */
async function damagedLog(dir: string): Promise<Buffer> {
  const wal = new WalStorage({ dir });
  assert.ok((await wal.open()).ok);
  wal.append({ promised: { round: 3, node: 2 } });
  await wal.sync();
  wal.append({ promised: { round: 4, node: 2 } });
  await wal.sync();
  await wal.close();
  const file = join(dir, "wal-00000001.log");
  const bytes = readFileSync(file);
  bytes[16 + 8 + 1] = (bytes[16 + 8 + 1] as number) ^ 0xff; // inside the first record's payload
  writeFileSync(file, bytes);
  return bytes;
}

describe("openDataDir: a fresh voter only when told new", () => {
  test("memory storage: new with isNew, rejoining without", async () => {
    const fresh = await openOnce(undefined, { isNew: true });
    assert.ok(fresh.opened.ok);
    assert.equal(fresh.opened.value.how, "new");
    assert.equal(fresh.opened.value.state.rejoining, false);
    const lost = await openOnce(undefined);
    assert.ok(lost.opened.ok);
    assert.equal(lost.opened.value.how, "rejoining");
    assert.equal(lost.opened.value.state.rejoining, true);
    assert.deepEqual(lost.messages, [DATA_DIR_MESSAGES.noStateRejoin]);
  });

  test("a missing directory with isNew starts new, and a later start without it loads that state", async () => {
    await inTempDir(async (tempDirPath) => {
      const dir = join(tempDirPath, "a", "b", "node-1"); // parents are created too
      const first = await openOnce(dir, { isNew: true });
      assert.ok(first.opened.ok);
      assert.equal(first.opened.value.how, "new");
      assert.ok(first.messages.includes(DATA_DIR_MESSAGES.startedNew));
      const again = await openOnce(dir);
      assert.ok(again.opened.ok);
      assert.equal(again.opened.value.how, "loaded", "the first start left a record: state, not a blank");
      assert.equal(again.opened.value.state.rejoining, false);
    });
  });

  for (const shape of ["missing", "empty"] as const) {
    test(`a ${shape} directory without isNew rejoins, durably, with one line saying why`, async () => {
      await inTempDir(async (tempDirPath) => {
        const dir = join(tempDirPath, "node-1");
        if (shape === "empty") mkdirSync(dir);
        const first = await openOnce(dir);
        assert.ok(first.opened.ok);
        assert.equal(first.opened.value.how, "rejoining");
        assert.equal(first.opened.value.reason, "no-state");
        assert.equal(first.events.filter((e) => e.message === DATA_DIR_MESSAGES.noStateRejoin).length, 1);
        // Nothing was moved aside: an empty directory is replaced, not kept.
        assert.deepEqual(readdirSync(tempDirPath), ["node-1"]);
        const again = await openOnce(dir, { isNew: true });
        assert.ok(again.opened.ok);
        assert.equal(again.opened.value.how, "rejoining", "the mark is on disk; --new does not undo it");
      });
    });
  }

  test("a log without a single record (a first start cut short) is no state", async () => {
    await inTempDir(async (tempDirPath) => {
      const dir = join(tempDirPath, "node-1");
      const wal = new WalStorage({ dir });
      assert.ok((await wal.open()).ok);
      await wal.close();
      const lost = await openOnce(dir);
      assert.ok(lost.opened.ok);
      assert.equal(lost.opened.value.how, "rejoining");
      rmSync(dir, { recursive: true });
      const wal2 = new WalStorage({ dir });
      assert.ok((await wal2.open()).ok);
      await wal2.close();
      const fresh = await openOnce(dir, { isNew: true });
      assert.ok(fresh.opened.ok);
      assert.equal(fresh.opened.value.how, "new");
    });
  });

  test("no directory but an earlier one moved aside: rejoin, even with isNew", async () => {
    await inTempDir(async (tempDirPath) => {
      const dir = join(tempDirPath, "node-1");
      mkdirSync(`${dir}.damaged-5`);
      const opened = await openOnce(dir, { isNew: true });
      assert.ok(opened.opened.ok);
      assert.equal(opened.opened.value.how, "rejoining");
      assert.equal(opened.opened.value.reason, "moved-aside");
    });
  });
});

describe("openDataDir: damage versus an operator's mistake", () => {
  test("a damaged log is moved aside whole and the node rejoins", async () => {
    await inTempDir(async (tempDirPath) => {
      const dir = join(tempDirPath, "node-1");
      const bytes = await damagedLog(dir);
      const opened = await openOnce(dir);
      assert.ok(opened.opened.ok);
      assert.equal(opened.opened.value.how, "rejoining");
      assert.equal(opened.opened.value.reason, "damaged");
      assert.deepEqual(readdirSync(tempDirPath).sort(), ["node-1", "node-1.damaged-1000"]);
      assert.deepEqual(readFileSync(join(tempDirPath, "node-1.damaged-1000", "wal-00000001.log")), bytes);
    });
  });

  test("a role that cannot rejoin gets the damage as an error, and nothing is moved", async () => {
    await inTempDir(async (tempDirPath) => {
      const dir = join(tempDirPath, "node-1");
      const bytes = await damagedLog(dir);
      const opened = await openOnce(dir, { onLostState: "refuse" });
      assert.ok(!opened.opened.ok);
      assert.equal(opened.opened.error.kind, "corrupt");
      assert.deepEqual(readdirSync(tempDirPath), ["node-1"]);
      assert.deepEqual(readFileSync(join(dir, "wal-00000001.log")), bytes);
    });
  });

  test("a regular file, a directory of other files, a path under a file: errors, nothing touched", async () => {
    await inTempDir(async (tempDirPath) => {
      const file = join(tempDirPath, "afile");
      writeFileSync(file, "mine");
      const home = join(tempDirPath, "home");
      mkdirSync(home);
      writeFileSync(join(home, "notes.txt"), "mine too");
      const cases: Array<[string, RegExp]> = [
        [file, /is not a directory/],
        [home, /holds files that are not a paxos log \(notes\.txt\)/],
        [join(file, "sub"), /ENOTDIR|not a directory/],
      ];
      for (const [dir, expected] of cases) {
        for (const isNew of [false, true]) {
          const opened = await openOnce(dir, { isNew });
          assert.ok(!opened.opened.ok, dir);
          assert.equal(opened.opened.error.kind, "operator");
          assert.match(opened.opened.error.message, expected);
        }
      }
      assert.deepEqual(readdirSync(tempDirPath).sort(), ["afile", "home"]);
      assert.equal(readFileSync(file, "utf8"), "mine");
      assert.deepEqual(readdirSync(home), ["notes.txt"]);
    });
  });
});

describe("openDataDir: a crash at any step of a rejoin set-up still comes back rejoining", () => {
  class Crash extends Error {}
  const setups = {
    /** Damaged state: it must also survive, moved aside, whatever step the crash hit. */
    damaged: async (dir: string) => {
      await damagedLog(dir);
      return {};
    },
    "no state": async (dir: string) => {
      mkdirSync(dir);
      return {};
    },
    requested: async (dir: string) => {
      const wal = new WalStorage({ dir });
      assert.ok((await wal.open()).ok);
      wal.append({ promised: { round: 3, node: 2 } });
      await wal.sync();
      await wal.close();
      return { rejoin: true };
    },
  };
  for (const [name, setup] of Object.entries(setups)) {
    for (const crashAt of REJOIN_STEPS) {
      test(`${name}: crash after ${crashAt}`, async () => {
        await inTempDir(async (tempDirPath) => {
          const dir = join(tempDirPath, "node-1");
          const extra = await setup(dir);
          const crash = (step: RejoinStep) => {
            if (step === crashAt) throw new Crash(step);
          };
          await assert.rejects(openOnce(dir, { ...extra, onStep: crash }), Crash);
          // The next start is told it is new, which must not matter: it had decided to rejoin.
          const next = await openOnce(dir, { isNew: true, nowMs: 2_000 });
          assert.ok(next.opened.ok, JSON.stringify(next.opened));
          assert.equal(next.opened.value.how, "rejoining");
          assert.equal(next.opened.value.state.rejoining, true);
          assert.ok(
            !readdirSync(tempDirPath).includes(`node-1.rejoin-tmp`),
            "the temporary directory is gone",
          );
          assert.equal(rejoinTempDir(dir), `${dir}.rejoin-tmp`);
          if (name === "damaged") {
            const aside = readdirSync(tempDirPath).filter((entry) => entry.startsWith("node-1.damaged-"));
            assert.equal(
              aside.length,
              1,
              `the damaged log is kept once: ${readdirSync(tempDirPath).join(" ")}`,
            );
          }
          // And once more: the mark stays.
          const third = await openOnce(dir, { isNew: true });
          assert.ok(third.opened.ok);
          assert.equal(third.opened.value.how, "rejoining");
        });
      });
    }
  }
});

/** `openDataDir`'s view of a `MemoryFileSystem` (no symbolic links; a removal is a rename to a trash). */
function memoryDataDirFs(fs: MemoryFileSystem): DataDirFileSystem {
  const fsError = (code: string, path: string) => Object.assign(new Error(`${code}: ${path}`), { code });
  let removed = 0;
  const remove = async (path: string) => {
    if (!fs.exists("/trash")) await fs.mkdir("/trash");
    await fs.rename(path, `/trash/${++removed}`);
  };
  return {
    kind: async (path) =>
      !fs.exists(path) ? null : (await fs.stat(path)).isDirectory ? "directory" : "file",
    realpath: async (path) => {
      if (!fs.exists(path)) throw fsError("ENOENT", path);
      return path;
    },
    mkdir: async (path) => {
      if (fs.exists(path)) throw fsError("EEXIST", path);
      await fs.mkdir(path);
    },
    readdir: (path) => fs.readdir(path),
    rename: (from, to) => fs.rename(from, to),
    removeEmptyDirectory: async (path) => {
      if ((await fs.readdir(path)).length > 0) throw fsError("ENOTEMPTY", path);
      await remove(path);
    },
    removeTree: remove,
    syncDirectory: (path) => fs.syncDirectory(path),
  };
}

describe("openDataDir: a full disk is the operator's, and moves nothing", () => {
  const options = (fs: MemoryFileSystem): Partial<OpenDataDirOptions> => ({
    fs: memoryDataDirFs(fs),
    createLog: (dir) => new WalStorage({ dir, fs }),
  });

  test("a new node on a full disk: an operator error naming ENOSPC", async () => {
    const fs = new MemoryFileSystem();
    fs.setBytesFree(0);
    const opened = await openOnce("/data/node-1", { ...options(fs), isNew: true });
    assert.ok(!opened.opened.ok);
    assert.equal(opened.opened.error.kind, "operator");
    assert.match(opened.opened.error.message, /ENOSPC/);
  });

  test("permission denied (EACCES on mkdir, on readdir): an operator error, nothing moved", async () => {
    const fs = new MemoryFileSystem();
    fs.failNext("mkdir", "EACCES");
    const denied = await openOnce("/data/node-1", { ...options(fs), isNew: true });
    assert.ok(!denied.opened.ok);
    assert.equal(denied.opened.error.kind, "operator");
    assert.match(denied.opened.error.message, /EACCES/);
    await fs.mkdir("/data/node-2");
    fs.failNext("readdir", "EACCES");
    const unreadable = await openOnce("/data/node-2", options(fs));
    assert.ok(!unreadable.opened.ok);
    assert.equal(unreadable.opened.error.kind, "operator");
    assert.match(unreadable.opened.error.message, /cannot read --data \/data\/node-2: EACCES/);
    assert.deepEqual((await fs.readdir("/data")).sort(), ["node-2"]);
  });

  test("a rejoin set-up on a full disk fails before the damaged log is moved; with space, it completes", async () => {
    const fs = new MemoryFileSystem();
    const wal = new WalStorage({ dir: "/data/node-1", fs });
    assert.ok((await wal.open()).ok);
    wal.append({ promised: { round: 3, node: 2 } });
    await wal.sync();
    await wal.close();
    fs.flipBit("/data/node-1/wal-00000001.log", 8 * 33); // inside the record: damage, not a torn tail
    fs.setBytesFree(0);
    const full = await openOnce("/data/node-1", options(fs));
    assert.ok(!full.opened.ok, JSON.stringify(full.opened));
    assert.equal(full.opened.error.kind, "operator");
    assert.match(full.opened.error.message, /ENOSPC/);
    assert.deepEqual(await fs.readdir("/data/node-1"), ["wal-00000001.log"], "the damaged log stays");

    fs.setBytesFree(Number.POSITIVE_INFINITY);
    const freed = await openOnce("/data/node-1", options(fs));
    assert.ok(freed.opened.ok);
    assert.equal(freed.opened.value.how, "rejoining");
    assert.deepEqual((await fs.readdir("/data")).sort(), ["node-1", "node-1.damaged-1000"]);
  });
});
