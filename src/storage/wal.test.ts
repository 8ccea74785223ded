import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { AcceptedEntry, DurableDelta } from "../core/index.js";
import { DurableModel, type DurableState, type StorageError } from "./storage.js";
import { type WalOptions, WalStorage } from "./wal.js";
import { segmentFileName } from "./wal-format.js";

async function withDir(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "paxos-wal-"));
  try {
    await test(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function openWal(
  dir: string,
  options: Partial<WalOptions> = {},
): Promise<{ wal: WalStorage; state: DurableState }> {
  const wal = new WalStorage({ dir, ...options });
  const opened = await wal.open();
  assert.ok(opened.ok, `open failed: ${opened.ok ? "" : JSON.stringify(opened.error)}`);
  return { wal, state: opened.value };
}

async function openError(dir: string, options: Partial<WalOptions> = {}): Promise<StorageError> {
  const opened = await new WalStorage({ dir, ...options }).open();
  assert.ok(!opened.ok, "open should have failed");
  return opened.error;
}

function vote(slot: number, round: number, payload: string): AcceptedEntry {
  return {
    slot,
    ballot: { round, node: 1 + (round % 3) },
    value: { commands: [{ client: 1 + (slot % 4), seq: round, payload }] },
  };
}

/** A deterministic mix of promises, rounds and votes, with slots written many times. */
function deltaAt(i: number): DurableDelta {
  if (i % 10 === 0) return { promised: { round: i, node: 1 } };
  if (i % 7 === 0) return { proposerRound: i };
  if (i % 13 === 0) return { promised: { round: i, node: 2 }, accepted: [vote((i % 50) + 1, i, `p${i}`)] };
  return { accepted: [vote((i % 50) + 1, i, `value ${i} ✓`)] };
}

function modelOf(deltas: readonly DurableDelta[]): DurableState {
  const model = new DurableModel();
  for (const delta of deltas) model.apply(delta);
  return model.snapshot();
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.startsWith("wal-")).sort();
}

/** Appends each delta and syncs it alone; returns where each record starts in segment 1. */
async function writeOneByOne(wal: WalStorage, deltas: readonly DurableDelta[]): Promise<number[]> {
  const offsets: number[] = [];
  for (const delta of deltas) {
    offsets.push(wal.stats.diskBytes);
    wal.append(delta);
    await wal.sync();
  }
  return offsets;
}

describe("WalStorage", () => {
  it("starts empty in a new directory (creating it)", async () => {
    await withDir(async (dir) => {
      const { wal, state } = await openWal(join(dir, "a", "b"));
      assert.deepEqual(state, {
        promised: { round: 0, node: 0 },
        accepted: [],
        round: 0,
        trimmedBelowSlot: 0,
        rejoining: false,
        log: [],
      });
      assert.deepEqual(await segmentFiles(join(dir, "a", "b")), ["wal-00000001.log"]);
      await wal.close();
    });
  });

  it("round-trips many deltas across several reopens", async () => {
    await withDir(async (dir) => {
      const all: DurableDelta[] = [];
      for (let run = 0; run < 4; run++) {
        const { wal, state } = await openWal(dir);
        assert.deepEqual(state, modelOf(all), `run ${run}`);
        for (let i = 0; i < 500; i++) {
          const delta = deltaAt(run * 500 + i);
          wal.append(delta);
          all.push(delta);
          if (i % 50 === 49) await wal.sync();
        }
        await wal.close();
      }
      const { wal, state } = await openWal(dir);
      assert.deepEqual(state, modelOf(all));
      assert.equal(state.accepted.length, 45); // slots 1, 11, 21, ... only ever see promises
      await wal.close();
    });
  });

  it("keeps the later vote for a slot, also across syncs and reopens", async () => {
    await withDir(async (dir) => {
      const { wal } = await openWal(dir);
      wal.append({ accepted: [vote(1, 1, "first"), vote(2, 1, "x")] });
      await wal.sync();
      wal.append({ accepted: [vote(1, 2, "second")] });
      wal.append({ accepted: [vote(1, 3, "third")] });
      await wal.close();
      const reopened = await openWal(dir);
      assert.deepEqual(reopened.state.accepted, [vote(1, 3, "third"), vote(2, 1, "x")]);
      await reopened.wal.close();
    });
  });

  it("loses unsynced appends when closed without syncing (as in a crash)", async () => {
    await withDir(async (dir) => {
      const { wal } = await openWal(dir);
      wal.append({ proposerRound: 1 });
      await wal.sync();
      wal.append({ proposerRound: 2 });
      await wal.close({ sync: false });
      const reopened = await openWal(dir);
      assert.equal(reopened.state.round, 1);
      await reopened.wal.close();
      assert.throws(() => wal.append({ proposerRound: 3 }), /closed/);
      await assert.rejects(wal.sync(), /closed/);
    });
  });

  it("repairs a torn tail cut at every byte of the last record, losing only that record", async () => {
    await withDir(async (dir) => {
      const deltas = Array.from({ length: 12 }, (_, i) => deltaAt(i + 1));
      deltas.push({
        promised: { round: 99, node: 2 },
        proposerRound: 7,
        accepted: [vote(3, 99, "the last one, a little longer")],
      });
      const { wal } = await openWal(dir);
      const offsets = await writeOneByOne(wal, deltas);
      await wal.close();
      const file = join(dir, segmentFileName(1));
      const full = await readFile(file);
      const lastStart = offsets.at(-1) as number;
      const withoutLast = modelOf(deltas.slice(0, -1));
      assert.ok(full.length - lastStart > 40);
      for (let cut = lastStart; cut < full.length; cut++) {
        await writeFile(file, full.subarray(0, cut));
        const reopened = await openWal(dir);
        assert.deepEqual(reopened.state, withoutLast, `cut at ${cut}`);
        assert.equal(reopened.wal.stats.tornTailBytes, cut - lastStart);
        await reopened.wal.close();
        assert.equal((await stat(file)).size, lastStart, "the torn bytes are cut off");
      }
      // The repaired log takes new records where the torn one was.
      await writeFile(file, full.subarray(0, full.length - 1));
      const { wal: again } = await openWal(dir);
      again.append(deltas.at(-1) as DurableDelta);
      await again.close();
      assert.deepEqual(await readFile(file), full);
    });
  });

  it("treats zeros, garbage, stale records or a damaged last record after the last good record as a torn tail", async () => {
    await withDir(async (dir) => {
      const deltas = Array.from({ length: 5 }, (_, i) => deltaAt(i + 1));
      const { wal } = await openWal(dir);
      const offsets = await writeOneByOne(wal, deltas);
      await wal.close();
      const file = join(dir, segmentFileName(1));
      const full = await readFile(file);
      const garbage = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % 256));
      // Also a copy of this segment's own records: stale blocks, valid only where they were written.
      for (const tail of [Buffer.alloc(4096), garbage, full.subarray(16)]) {
        await writeFile(file, Buffer.concat([full, tail]));
        const reopened = await openWal(dir);
        assert.deepEqual(reopened.state, modelOf(deltas));
        assert.equal(reopened.wal.stats.tornTailBytes, tail.length);
        await reopened.wal.close();
      }
      // Bit rot in the very last record cannot be told from a torn write: it is cut off.
      const flipped = Buffer.from(full);
      const lastStart = offsets.at(-1) as number;
      flipped[lastStart + 10] = (flipped[lastStart + 10] as number) ^ 0x10;
      await writeFile(file, flipped);
      const reopened = await openWal(dir);
      assert.deepEqual(reopened.state, modelOf(deltas.slice(0, -1)));
      await reopened.wal.close();
    });
  });

  it("reports a flipped bit in a middle record as corruption, with file and offset, touching nothing", async () => {
    await withDir(async (dir) => {
      const deltas = Array.from({ length: 9 }, (_, i) => deltaAt(i + 1));
      const { wal } = await openWal(dir);
      const offsets = await writeOneByOne(wal, deltas);
      await wal.close();
      const file = join(dir, segmentFileName(1));
      const full = await readFile(file);
      const middle = offsets[4] as number;
      // In the length (low and high bits), in the checksum, in the payload.
      for (const [byte, bit] of [
        [0, 0x01],
        [3, 0x80],
        [5, 0x04],
        [8, 0x01],
        [12, 0x20],
      ] as const) {
        const damaged = Buffer.from(full);
        damaged[middle + byte] = (damaged[middle + byte] as number) ^ bit;
        await writeFile(file, damaged);
        const error = await openError(dir);
        assert.equal(error.kind, "corrupt");
        assert.ok(error.kind === "corrupt");
        assert.equal(error.file, "wal-00000001.log");
        assert.equal(error.offset, middle, `flip at byte ${byte}: ${error.detail}`);
        assert.deepEqual(await readFile(file), damaged, "nothing repaired");
      }
    });
  });

  it("reports a missing segment, a missing first segment and damage in a full segment as corruption", async () => {
    await withDir(async (dir) => {
      const { wal } = await openWal(dir, { segmentBytesMax: 200 });
      await writeOneByOne(
        wal,
        Array.from({ length: 30 }, (_, i) => deltaAt(i + 1)),
      );
      await wal.close();
      const files = await segmentFiles(dir);
      assert.ok(files.length >= 4, `${files.length} segments`);
      const second = join(dir, "wal-00000002.log");
      const secondBytes = await readFile(second);

      // A bad record at the end of a segment that is not the last is corruption, not a torn tail.
      await writeFile(second, secondBytes.subarray(0, secondBytes.length - 1));
      let error = await openError(dir);
      assert.ok(error.kind === "corrupt" && error.file === "wal-00000002.log", JSON.stringify(error));

      await unlink(second);
      error = await openError(dir);
      assert.ok(error.kind === "corrupt" && error.file === "wal-00000002.log", JSON.stringify(error));
      assert.match(error.detail, /missing/);
      await writeFile(second, secondBytes);

      await unlink(join(dir, "wal-00000001.log"));
      error = await openError(dir);
      assert.ok(error.kind === "corrupt" && error.file === "wal-00000002.log", JSON.stringify(error));
      assert.match(error.detail, /earlier segments are missing/);
    });
  });

  it("rolls segments at the configured size and reads them all back", async () => {
    await withDir(async (dir) => {
      const deltas = Array.from({ length: 400 }, (_, i) => deltaAt(i + 1));
      const { wal } = await openWal(dir, { segmentBytesMax: 1024 });
      for (let i = 0; i < deltas.length; i++) {
        wal.append(deltas[i] as DurableDelta);
        if (i % 4 === 3) await wal.sync();
      }
      // One commit bigger than a segment goes whole into a fresh one.
      const big = { accepted: [vote(60, 1, "y".repeat(3000))] };
      wal.append(big);
      await wal.sync();
      const stats = wal.stats;
      await wal.close();
      const files = await segmentFiles(dir);
      assert.ok(files.length > 10, `${files.length} segments`);
      assert.deepEqual(
        files,
        files.map((_, i) => segmentFileName(i + 1)),
      );
      let total = 0;
      for (const name of files) {
        const size = (await stat(join(dir, name))).size;
        total += size;
        if (name !== files.at(-1)) assert.ok(size <= 1024, `${name} is ${size} bytes`);
      }
      assert.equal(stats.segments, files.length);
      assert.equal(stats.diskBytes, total);
      const reopened = await openWal(dir, { segmentBytesMax: 1024 });
      assert.deepEqual(reopened.state, modelOf([...deltas, big]));
      await reopened.wal.close();
    });
  });

  it("compaction keeps the state, trims old slots and bounds disk usage", async () => {
    await withDir(async (dir) => {
      const model = new DurableModel();
      const { wal } = await openWal(dir, { segmentBytesMax: 4096 });
      let largest = 0;
      for (let round = 1; round <= 30; round++) {
        for (let i = 0; i < 100; i++) {
          const delta: DurableDelta = {
            promised: { round, node: 1 },
            accepted: [vote(1 + (i % 20), round, `r${round} i${i}`)],
          };
          wal.append(delta);
          model.apply(delta);
        }
        await wal.sync();
        largest = Math.max(largest, wal.stats.diskBytes);
        if (round % 5 === 0) {
          await wal.compact();
          assert.equal(wal.stats.segments, 1);
          assert.ok(wal.stats.diskBytes < 2000, `${wal.stats.diskBytes} bytes after compaction`);
        }
      }
      // Without compaction the log would hold 3000 records of about 40 bytes.
      assert.ok(largest < 30_000, `largest ${largest} bytes`);
      assert.equal(wal.stats.compactions, 6);
      wal.append({ proposerRound: 5 });
      model.apply({ proposerRound: 5 });
      await wal.compact({ trimBelowSlot: 11 });
      model.trim(11);
      wal.append({ accepted: [vote(2, 31, "late vote below the trim")] });
      model.apply({ accepted: [vote(2, 31, "late vote below the trim")] });
      await wal.close();

      const reopened = await openWal(dir, { segmentBytesMax: 4096 });
      assert.deepEqual(reopened.state, model.snapshot());
      assert.equal(reopened.state.trimmedBelowSlot, 11);
      assert.deepEqual(
        reopened.state.accepted.map((entry) => entry.slot),
        [2, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
      );
      await reopened.wal.close();
    });
  });

  it("recovers from a compaction interrupted before or after its checkpoint was durable", async () => {
    await withDir(async (dir) => {
      const deltas = Array.from({ length: 200 }, (_, i) => deltaAt(i + 1));
      const { wal } = await openWal(dir, { segmentBytesMax: 1024 });
      for (const delta of deltas) wal.append(delta);
      await wal.sync();
      const before = new Map<string, Buffer>();
      for (const name of await segmentFiles(dir)) before.set(name, await readFile(join(dir, name)));
      await wal.compact();
      await wal.close();
      const [checkpointName] = await segmentFiles(dir);
      assert.equal(checkpointName, segmentFileName(before.size + 1));
      const checkpointFile = join(dir, checkpointName as string);
      const checkpoint = await readFile(checkpointFile);

      // Crashed while deleting: the old segments are still there. Open finishes the job.
      for (const [name, bytes] of before) await writeFile(join(dir, name), bytes);
      let reopened = await openWal(dir, { segmentBytesMax: 1024 });
      assert.deepEqual(reopened.state, modelOf(deltas));
      assert.equal(reopened.wal.stats.segments, 1);
      assert.deepEqual(await segmentFiles(dir), [checkpointName]);
      await reopened.wal.close();

      // Crashed while writing the checkpoint: old segments intact, the checkpoint cut short.
      for (const cut of [16, 30, checkpoint.length - 1]) {
        for (const [name, bytes] of before) await writeFile(join(dir, name), bytes);
        await writeFile(checkpointFile, checkpoint.subarray(0, cut));
        reopened = await openWal(dir, { segmentBytesMax: 1024 });
        assert.deepEqual(reopened.state, modelOf(deltas), `cut at ${cut}`);
        assert.equal(reopened.wal.stats.tornTailBytes, cut - 16);
        assert.equal(reopened.wal.stats.segments, before.size + 1);
        // The emptied segment simply continues the log.
        reopened.wal.append({ proposerRound: 1234 });
        await reopened.wal.close();
        const again = await openWal(dir, { segmentBytesMax: 1024 });
        assert.deepEqual(again.state, modelOf([...deltas, { proposerRound: 1234 }]));
        await again.wal.close();
        await writeFile(checkpointFile, checkpoint);
      }
    });
  });

  it("rewrites a last segment whose creation was interrupted, and rejects a bad header elsewhere", async () => {
    await withDir(async (dir) => {
      const { wal } = await openWal(dir);
      wal.append({ proposerRound: 3 });
      await wal.close();
      for (const header of [Buffer.alloc(0), Buffer.from("PXW"), Buffer.alloc(16)]) {
        await writeFile(join(dir, "wal-00000002.log"), header);
        const reopened = await openWal(dir);
        assert.equal(reopened.state.round, 3);
        assert.equal(reopened.wal.stats.tornTailBytes, header.length);
        assert.equal((await stat(join(dir, "wal-00000002.log"))).size, 16);
        await reopened.wal.close();
        await unlink(join(dir, "wal-00000002.log"));
      }
      await writeFile(join(dir, "wal-00000002.log"), Buffer.from("not a log segment at all"));
      let error = await openError(dir);
      assert.ok(error.kind === "corrupt" && error.file === "wal-00000002.log" && error.offset === 0);
      await unlink(join(dir, "wal-00000002.log"));
      // A full segment with a zeroed header is damage, not a torn creation.
      const { wal: second } = await openWal(dir, { segmentBytesMax: 40 });
      second.append({ proposerRound: 4 });
      await second.sync();
      second.append({ proposerRound: 5 });
      await second.close();
      const first = await readFile(join(dir, "wal-00000001.log"));
      await writeFile(join(dir, "wal-00000001.log"), Buffer.concat([Buffer.alloc(16), first.subarray(16)]));
      error = await openError(dir);
      assert.ok(error.kind === "corrupt" && error.file === "wal-00000001.log", JSON.stringify(error));
    });
  });

  it("group commit: 1000 appends, one sync, exactly one datasync", async () => {
    await withDir(async (dir) => {
      const { wal } = await openWal(dir);
      const before = wal.stats.syncs;
      for (let i = 0; i < 1000; i++) wal.append(deltaAt(i + 1));
      assert.equal(wal.stats.pendingRecords, 1000);
      await wal.sync();
      assert.equal(wal.stats.syncs - before, 1);
      assert.equal(wal.stats.pendingRecords, 0);
      assert.equal(wal.stats.records, 1000);
      // Nothing appended: nothing to sync.
      await wal.sync();
      assert.equal(wal.stats.syncs - before, 1);
      await wal.close();
    });
  });

  it("coalesces syncs asked for while one is in flight into the next round", async () => {
    await withDir(async (dir) => {
      const { wal } = await openWal(dir);
      const before = wal.stats.syncs;
      wal.append(deltaAt(1));
      const first = wal.sync();
      assert.equal(wal.sync(), first, "same turn: the same round");
      await new Promise((resolve) => setImmediate(resolve)); // the first round is under way
      const waiting: Promise<void>[] = [];
      for (let i = 0; i < 10; i++) {
        wal.append(deltaAt(i + 2));
        waiting.push(wal.sync());
      }
      assert.ok(waiting.every((promise) => promise === waiting[0]));
      await Promise.all([first, ...waiting]);
      assert.equal(wal.stats.syncs - before, 2);
      await wal.close();
      const reopened = await openWal(dir);
      assert.deepEqual(reopened.state, modelOf(Array.from({ length: 11 }, (_, i) => deltaAt(i + 1))));
      await reopened.wal.close();
    });
  });

  it("refuses a second open and a malformed delta", async () => {
    await withDir(async (dir) => {
      const { wal } = await openWal(dir);
      await assert.rejects(wal.open(), /once/);
      assert.throws(() => wal.append({ proposerRound: -1 }), RangeError);
      assert.equal(wal.stats.pendingRecords, 0);
      await wal.close();
    });
  });
});
