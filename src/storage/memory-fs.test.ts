import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Prng } from "../core/index.js";
import type { FileHandle } from "./fs.js";
import { type FsOperation, MemoryFileSystem } from "./memory-fs.js";

const SECTOR = 512;

/** `sectors` sectors, sector i filled with byte `fill + i`. */
function sectorsOf(sectors: number, fill: number): Buffer {
  const bytes = Buffer.alloc(sectors * SECTOR);
  for (let i = 0; i < sectors; i++) bytes.fill(fill + i, i * SECTOR, (i + 1) * SECTOR);
  return bytes;
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  const { bytesWritten } = await handle.write(bytes, 0, bytes.length, position);
  assert.equal(bytesWritten, bytes.length);
}

/** A synced file /d/f of 2 sectors (0xa0, 0xa1) with 4 more sectors (0x10..0x13) written unsynced. */
async function fileWithUnsyncedTail(): Promise<MemoryFileSystem> {
  const fs = new MemoryFileSystem({ sectorBytes: SECTOR });
  await fs.mkdir("/d");
  await fs.syncDirectory("/");
  const handle = await fs.open("/d/f", "wx");
  await fs.syncDirectory("/d");
  await writeAll(handle, sectorsOf(2, 0xa0), 0);
  await handle.datasync();
  await writeAll(handle, sectorsOf(4, 0x10), 2 * SECTOR);
  return fs;
}

/** Which of the 4 unsynced sectors (0x10..0x13) reached the disk, and the file's length in sectors. */
async function survivors(fs: MemoryFileSystem): Promise<{ kept: boolean[]; sectors: number }> {
  const bytes = await fs.readFile("/d/f");
  assert.equal(bytes.length % SECTOR, 0);
  assert.deepEqual(bytes.subarray(0, 2 * SECTOR), sectorsOf(2, 0xa0), "synced sectors survive");
  const kept: boolean[] = [];
  for (let i = 0; i < 4; i++) {
    const at = (2 + i) * SECTOR;
    if (at >= bytes.length) {
      kept.push(false);
      continue;
    }
    const sector = bytes.subarray(at, at + SECTOR);
    if (sector.every((byte) => byte === 0x10 + i)) kept.push(true);
    else if (sector.every((byte) => byte === 0)) kept.push(false);
    else assert.fail(`sector ${2 + i} is neither written nor empty`);
  }
  return { kept, sectors: bytes.length / SECTOR };
}

describe("MemoryFileSystem crash model", () => {
  it("a crash in mode lost keeps exactly the synced bytes", async () => {
    const fs = await fileWithUnsyncedTail();
    fs.crash(new Prng(1), "lost");
    assert.deepEqual(await fs.readFile("/d/f"), sectorsOf(2, 0xa0));
    assert.equal(fs.unsyncedSectors(), 0);
  });

  it("a torn crash keeps a prefix of the unsynced sectors, in write order, and every prefix occurs", async () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 64; seed++) {
      const fs = await fileWithUnsyncedTail();
      fs.crash(new Prng(seed), "torn");
      const { kept, sectors } = await survivors(fs);
      const prefix = kept.indexOf(false) === -1 ? 4 : kept.indexOf(false);
      assert.ok(
        kept.every((k, i) => k === i < prefix),
        `seed ${seed}: not a prefix: ${kept}`,
      );
      assert.equal(sectors, 2 + prefix, "the file ends where the torn write does");
      seen.add(prefix);
    }
    assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4]);
  });

  it("a reordered crash keeps any subset of the unsynced sectors, a later one without an earlier one too", async () => {
    let outOfOrder = 0;
    for (let seed = 0; seed < 64; seed++) {
      const fs = await fileWithUnsyncedTail();
      fs.crash(new Prng(seed), "reordered");
      const { kept } = await survivors(fs);
      if (kept.some((k, i) => k && kept.slice(0, i).includes(false))) outOfOrder++;
    }
    assert.ok(outOfOrder > 0, "some crash wrote a later sector and lost an earlier one");
  });

  it("writes within one sector tear whole: a sector is either old or new", async () => {
    const fs = new MemoryFileSystem({ sectorBytes: SECTOR });
    const handle = await fs.open("/f", "wx");
    await fs.syncDirectory("/");
    await writeAll(handle, Buffer.alloc(SECTOR, 1), 0);
    await handle.sync();
    await writeAll(handle, Buffer.alloc(10, 2), 100);
    fs.crash(new Prng(3), "reordered");
    const bytes = await fs.readFile("/f");
    const changed = bytes.subarray(100, 110).every((byte) => byte === 2);
    assert.ok(changed || bytes.every((byte) => byte === 1));
  });

  it("the same seed gives the same crash", async () => {
    const results: Buffer[] = [];
    for (let run = 0; run < 2; run++) {
      const fs = await fileWithUnsyncedTail();
      fs.crash(new Prng(99));
      results.push(await fs.readFile("/d/f"));
    }
    assert.deepEqual(results[0], results[1]);
  });

  it("directory entries are durable only after the directory is synced", async () => {
    const fs = new MemoryFileSystem();
    await fs.mkdir("/a/b");
    await fs.writeFile("/a/b/kept", Buffer.from("x"));
    // Nothing synced: the whole tree may vanish.
    fs.crash(new Prng(1), "lost");
    assert.equal(fs.exists("/a"), false);

    await fs.mkdir("/a/b");
    await fs.syncDirectory("/");
    await fs.syncDirectory("/a");
    const handle = await fs.open("/a/b/kept", "wx");
    await handle.sync();
    await fs.syncDirectory("/a/b");
    await fs.writeFile("/a/b/new", Buffer.from("y"));
    await fs.unlink("/a/b/kept");
    fs.crash(new Prng(1), "lost");
    assert.deepEqual(await fs.readdir("/a/b"), ["kept"], "the unsynced create and unlink are undone");

    await fs.rename("/a/b/kept", "/a/b/moved");
    await fs.syncDirectory("/a/b");
    fs.crash(new Prng(1), "lost");
    assert.deepEqual(await fs.readdir("/a/b"), ["moved"]);
  });

  it("a crash keeps a prefix of a directory's unsynced changes", async () => {
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const fs = new MemoryFileSystem();
      for (const name of ["1", "2", "3"]) await fs.writeFile(`/${name}`, Buffer.from(name));
      fs.crash(new Prng(seed), "torn");
      const names = (await fs.readdir("/")).sort().join("");
      assert.ok(["", "1", "12", "123"].includes(names), names);
      outcomes.add(names);
    }
    assert.equal(outcomes.size, 4);
  });

  it("a handle opened before a crash, or a call in flight during it, fails", async () => {
    let release: () => void = () => undefined;
    const fs = new MemoryFileSystem();
    const handle = await fs.open("/f", "wx");
    fs.scheduler = (operation: FsOperation) =>
      operation.kind === "datasync" ? new Promise<void>((resolve) => (release = resolve)) : undefined;
    await writeAll(handle, Buffer.from("vote"), 0);
    const syncing = handle.datasync();
    fs.crash(new Prng(1), "lost");
    release();
    await assert.rejects(syncing, /crashed/);
    await assert.rejects(handle.read(Buffer.alloc(4), 0, 4, 0), { code: "EBADF" });
    await handle.close(); // harmless
  });

  it("a scheduler decides when a sync completes: durable only then", async () => {
    const fs = new MemoryFileSystem();
    const waiting: { operation: FsOperation; resolve: () => void }[] = [];
    const handle = await fs.open("/f", "wx");
    await fs.syncDirectory("/");
    fs.scheduler = (operation) => new Promise<void>((resolve) => waiting.push({ operation, resolve }));
    const written = handle.write(Buffer.from("abc"), 0, 3, 0);
    assert.equal(waiting.length, 1);
    assert.equal(waiting[0]?.operation.kind, "write");
    waiting.shift()?.resolve();
    await written;
    let synced = false;
    const syncing = handle.datasync().then(() => {
      synced = true;
    });
    await Promise.resolve();
    assert.equal(synced, false);
    assert.equal(waiting[0]?.operation.kind, "datasync");
    waiting.shift()?.resolve();
    await syncing;
    fs.scheduler = null;
    fs.crash(new Prng(5), "lost");
    assert.equal((await fs.readFile("/f")).toString(), "abc");
  });

  it("a bit flip changes synced bytes on disk and what reads see", async () => {
    const fs = await fileWithUnsyncedTail();
    fs.flipBit("/d/f", 8 * 5 + 3);
    const bytes = await fs.readFile("/d/f");
    assert.equal(bytes[5], 0xa0 ^ 8);
    fs.crash(new Prng(1), "lost");
    assert.equal((await fs.readFile("/d/f"))[5], 0xa0 ^ 8);
    const bit = fs.flipRandomBit("/d/f", new Prng(2));
    assert.ok(bit >= 0 && bit < 2 * SECTOR * 8);
  });

  it("a lost file and a wiped directory are gone for good", async () => {
    const fs = await fileWithUnsyncedTail();
    await fs.writeFile("/d/g", Buffer.from("g"));
    await fs.syncDirectory("/d");
    fs.loseFile("/d/f");
    fs.crash(new Prng(1), "lost");
    assert.deepEqual(await fs.readdir("/d"), ["g"]);
    fs.wipeDirectory("/d");
    assert.deepEqual(await fs.readdir("/d"), []);
    fs.crash(new Prng(1), "torn");
    assert.deepEqual(await fs.readdir("/d"), []);
  });

  it("a failed fsync loses the dirty pages for good, though a later fsync succeeds (fsyncgate)", async () => {
    const fs = await fileWithUnsyncedTail();
    const handle = await fs.open("/d/f", "r+");
    fs.failNext("datasync", "EIO");
    await assert.rejects(handle.datasync(), { code: "EIO" });
    await handle.datasync();
    assert.equal((await fs.readFile("/d/f")).length, 6 * SECTOR, "still in the page cache");
    fs.crash(new Prng(1), "reordered");
    // The later fsync made the size durable, but the data never reached the disk: zeros (a hole).
    const { kept, sectors } = await survivors(fs);
    assert.deepEqual(kept, [false, false, false, false]);
    assert.equal(sectors, 6);
  });

  it("a full disk writes what fits, then fails with ENOSPC; overwrites need no space", async () => {
    const fs = new MemoryFileSystem();
    const handle = await fs.open("/f", "wx");
    fs.setBytesFree(10);
    assert.equal((await handle.write(Buffer.alloc(16, 7), 0, 16, 0)).bytesWritten, 10);
    await assert.rejects(handle.write(Buffer.alloc(1), 0, 1, 10), { code: "ENOSPC" });
    assert.equal((await handle.write(Buffer.alloc(4, 9), 0, 4, 0)).bytesWritten, 4);
    await assert.rejects(fs.writeFile("/g", Buffer.alloc(1)), { code: "ENOSPC" });
  });

  it("reports errors as Node does", async () => {
    const fs = new MemoryFileSystem();
    await assert.rejects(fs.readFile("/missing"), { code: "ENOENT" });
    await fs.writeFile("/f", Buffer.from("x"));
    await assert.rejects(fs.open("/f", "wx"), { code: "EEXIST" });
    await assert.rejects(fs.mkdir("/f/sub"), { code: "ENOTDIR" });
    await assert.rejects(fs.readdir("/f"), { code: "ENOTDIR" });
    await assert.rejects(fs.unlink("/"), { code: "EISDIR" });
    await assert.rejects(fs.readFile("relative"), { code: "EINVAL" });
    assert.equal(await fs.mkdir("/x/y"), "/x");
    assert.equal(await fs.mkdir("/x/y"), undefined);
    const reader = await fs.open("/f", "r");
    await assert.rejects(reader.write(Buffer.from("y"), 0, 1, 0), { code: "EBADF" });
    fs.failNext("unlink", "EACCES");
    await assert.rejects(fs.unlink("/f"), { code: "EACCES" });
    await fs.unlink("/f");
  });
});
