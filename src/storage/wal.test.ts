import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { AcceptedEntry, DurableDelta, SlotValue, Snapshot } from "../core/index.js";
import { crc32 } from "./crc32.js";
import { type FileSystem, nodeFileSystem } from "./fs.js";
import { MemoryFileSystem } from "./memory-fs.js";
import { DurableModel, type DurableState, type StorageError } from "./storage.js";
import { type WalOptions, WalStorage } from "./wal.js";
import {
  alignRecord,
  RECORD_HEADER_BYTES,
  RecordBuffer,
  SEAL_RECORD_BYTES,
  segmentFileName,
} from "./wal-format.js";

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

/** `bytes` of segment `segment` with the seal a roll appends to it. */
function sealed(bytes: Buffer, segment: number): Buffer {
  const seal = new RecordBuffer(64);
  seal.appendSeal(segment + 1);
  seal.seal(segment, bytes.length);
  return Buffer.concat([bytes, seal.view()]);
}

/** A decided value for `slot`. */
function decidedAt(slot: number, payload = `d${slot}`): SlotValue {
  return { slot, value: { commands: [{ client: 1, seq: slot, payload }] } };
}

/** A snapshot through `slot` whose state is about `appUnits` code units of mixed text. */
function snapshotAt(slot: number, appUnits = 64): Snapshot {
  const unit = `state ${slot} héllo 漢字 🎉 `;
  const app = unit.repeat(Math.ceil(appUnits / unit.length));
  return { slot, sessions: [1, 1, 1, slot, 2, 1, 5, 9], app };
}

/** Where each record starts in `bytes` from `from` to the end, and where the last one ends. */
function recordBoundaries(bytes: Buffer, from: number): number[] {
  const boundaries = [from];
  for (let at = from; at < bytes.length; ) {
    at = alignRecord(at + RECORD_HEADER_BYTES + bytes.readUInt32LE(at));
    boundaries.push(at);
  }
  return boundaries;
}

/** A directory for one test on one file system, and how to remove it. */
interface TestDir {
  readonly fs: FileSystem;
  readonly dir: string;
  dispose(): Promise<void>;
}

const fileSystems: { readonly label: string; make(): Promise<TestDir> }[] = [
  {
    label: "the real file system",
    async make() {
      const dir = await mkdtemp(join(tmpdir(), "paxos-wal-"));
      return { fs: nodeFileSystem, dir, dispose: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    label: "MemoryFileSystem",
    async make() {
      return { fs: new MemoryFileSystem(), dir: "/data/node-1", dispose: async () => undefined };
    },
  },
];

for (const fileSystem of fileSystems) {
  /** The file system of the test running now (tests in a file run one after another). */
  let fs: FileSystem = nodeFileSystem;
  const readFile = (path: string): Promise<Buffer> => fs.readFile(path);
  const writeFile = (path: string, bytes: Uint8Array): Promise<void> => fs.writeFile(path, bytes);
  const unlink = (path: string): Promise<void> => fs.unlink(path);
  const stat = (path: string): Promise<{ size: number }> => fs.stat(path);

  async function withDir(test: (dir: string) => Promise<void>): Promise<void> {
    const made = await fileSystem.make();
    fs = made.fs;
    try {
      await test(made.dir);
    } finally {
      await made.dispose();
    }
  }

  async function openWal(
    dir: string,
    options: Partial<WalOptions> = {},
  ): Promise<{ wal: WalStorage; state: DurableState }> {
    const wal = new WalStorage({ dir, fs, ...options });
    const opened = await wal.open();
    assert.ok(opened.ok, `open failed: ${opened.ok ? "" : JSON.stringify(opened.error)}`);
    return { wal, state: opened.value };
  }

  async function openError(dir: string, options: Partial<WalOptions> = {}): Promise<StorageError> {
    const opened = await new WalStorage({ dir, fs, ...options }).open();
    assert.ok(!opened.ok, "open should have failed");
    return opened.error;
  }

  async function segmentFiles(dir: string): Promise<string[]> {
    return (await fs.readdir(dir)).filter((name) => name.startsWith("wal-")).sort();
  }

  describe(`WalStorage over ${fileSystem.label}`, () => {
    it("starts empty in a new directory (creating it)", async () => {
      await withDir(async (dir) => {
        const { wal, state } = await openWal(join(dir, "a", "b"));
        assert.deepEqual(state, {
          promised: { round: 0, node: 0 },
          accepted: [],
          round: 0,
          trimmedBelowSlot: 0,
          rejoining: false,
          snapshot: null,
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

    it("treats zeros or a cut after the last good record as a torn tail; garbage, stale records or rot there as corruption", async () => {
      await withDir(async (dir) => {
        const deltas = Array.from({ length: 5 }, (_, i) => deltaAt(i + 1));
        const { wal } = await openWal(dir);
        const offsets = await writeOneByOne(wal, deltas);
        await wal.close();
        const file = join(dir, segmentFileName(1));
        const full = await readFile(file);
        const lastStart = offsets.at(-1) as number;
        // Zeros: sectors that never reached the disk. A cut inside the last record: the same.
        for (const bytes of [Buffer.concat([full, Buffer.alloc(4096)]), full.subarray(0, full.length - 8)]) {
          await writeFile(file, bytes);
          const reopened = await openWal(dir);
          const survived = bytes.length > full.length ? deltas : deltas.slice(0, -1);
          assert.deepEqual(reopened.state, modelOf(survived));
          assert.equal(
            reopened.wal.stats.tornTailBytes,
            bytes.length - (bytes.length > full.length ? full.length : lastStart),
          );
          await reopened.wal.close();
        }
        // Garbage, a copy of this segment's own records (stale blocks: valid only where they were
        // written), or a flipped bit in the last record: no sign of a lost sector, so synced bytes
        // may be damaged. Never cut off silently: corruption, and nothing is touched.
        const garbage = Buffer.from(Array.from({ length: 304 }, (_, i) => (i * 7919 + 13) % 256));
        const flipped = Buffer.from(full);
        flipped[lastStart + 20] = (flipped[lastStart + 20] as number) ^ 0x10;
        for (const bytes of [
          Buffer.concat([full, garbage]),
          Buffer.concat([full, full.subarray(16)]),
          flipped,
        ]) {
          await writeFile(file, bytes);
          const error = await openError(dir);
          assert.ok(
            error.kind === "corrupt" && /no sign of an interrupted write/.test(error.detail),
            JSON.stringify(error),
          );
          assert.deepEqual(await readFile(file), bytes, "nothing repaired");
        }
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
        // The compaction's roll seals the last of them before the checkpoint goes in.
        const lastName = segmentFileName(before.size);
        before.set(lastName, sealed(before.get(lastName) as Buffer, before.size));
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
        const unsealed = await readFile(join(dir, "wal-00000001.log"));
        for (const header of [Buffer.alloc(0), Buffer.from("PXW"), Buffer.alloc(16)]) {
          await writeFile(join(dir, "wal-00000002.log"), header);
          const reopened = await openWal(dir);
          assert.equal(reopened.state.round, 3);
          assert.equal(reopened.wal.stats.tornTailBytes, header.length);
          assert.equal((await stat(join(dir, "wal-00000002.log"))).size, 16);
          // The roll stopped before segment 1 was sealed: open finishes it.
          assert.deepEqual(await readFile(join(dir, "wal-00000001.log")), sealed(unsealed, 1));
          await reopened.wal.close();
          await unlink(join(dir, "wal-00000002.log"));
          await writeFile(join(dir, "wal-00000001.log"), unsealed);
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

    it("says whether it found a log: fresh in a new or emptied directory, not after a write", async () => {
      await withDir(async (dir) => {
        const { wal } = await openWal(dir);
        assert.equal(wal.fresh, true);
        await wal.close();
        // An empty log (header only) is still a log: the node was started here before.
        const reopened = await openWal(dir);
        assert.equal(reopened.wal.fresh, false);
        await reopened.wal.close();
        await unlink(join(dir, segmentFileName(1)));
        const emptied = await openWal(dir);
        assert.equal(emptied.wal.fresh, true, "no segment left: the caller decides (new node or rejoin)");
        await emptied.wal.close();
      });
    });

    it("detects a lost newest segment, a lost middle one and lost first ones; with none left it is fresh", async () => {
      await withDir(async (dir) => {
        const deltas = Array.from({ length: 60 }, (_, i) => deltaAt(i + 1));
        const { wal } = await openWal(dir, { segmentBytesMax: 512 });
        for (const delta of deltas) {
          wal.append(delta);
          await wal.sync();
        }
        await wal.close();
        const names = await segmentFiles(dir);
        assert.ok(names.length >= 4, `${names.length} segments`);
        const saved = new Map<string, Buffer>();
        for (const name of names) saved.set(name, await readFile(join(dir, name)));
        // Every segment but the newest ends with its seal.
        for (const name of names.slice(0, -1)) {
          const bytes = saved.get(name) as Buffer;
          const number = Number(name.slice(4, 12));
          const unsealed = bytes.subarray(0, bytes.length - SEAL_RECORD_BYTES);
          assert.deepEqual(sealed(unsealed, number), bytes, `${name} is sealed`);
        }
        const restore = async () => {
          for (const [name, bytes] of saved) await writeFile(join(dir, name), bytes);
        };
        const lose = async (lost: readonly string[]): Promise<void> => {
          await restore();
          for (const name of lost) await unlink(join(dir, name));
        };

        await lose([names.at(-1) as string]);
        let error = await openError(dir, { segmentBytesMax: 512 });
        assert.ok(error.kind === "corrupt" && error.file === names.at(-1), JSON.stringify(error));
        assert.match(error.detail, /newest segment was lost/);

        await lose(names.slice(-2));
        error = await openError(dir, { segmentBytesMax: 512 });
        assert.ok(error.kind === "corrupt" && error.file === names.at(-2), JSON.stringify(error));

        await lose([names[1] as string]);
        error = await openError(dir, { segmentBytesMax: 512 });
        assert.ok(error.kind === "corrupt" && error.file === names[1], JSON.stringify(error));
        assert.match(error.detail, /segment missing/);

        await lose([names[0] as string]);
        error = await openError(dir, { segmentBytesMax: 512 });
        assert.ok(error.kind === "corrupt" && /earlier segments are missing/.test(error.detail));

        await lose(names);
        const { wal: fresh, state } = await openWal(dir, { segmentBytesMax: 512 });
        assert.equal(fresh.fresh, true);
        assert.deepEqual(state, modelOf([]));
        await fresh.close();

        await lose(names.slice(0, 0));
        const whole = await openWal(dir, { segmentBytesMax: 512 });
        assert.equal(whole.wal.fresh, false);
        assert.deepEqual(whole.state, modelOf(deltas));
        await whole.wal.close();
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

  describe(`WalStorage with snapshots over ${fileSystem.label}`, () => {
    it("reopens a snapshot, the log past it and the votes above the floor", async () => {
      await withDir(async (dir) => {
        const model = new DurableModel();
        const deltas: DurableDelta[] = [
          { promised: { round: 1, node: 1 }, accepted: [vote(1, 1, "a"), vote(2, 1, "b"), vote(3, 1, "c")] },
          { decided: [decidedAt(1), decidedAt(2)] },
          // The snapshot applies first: slot 2 below it is superseded, slot 3 past it is kept.
          { snapshot: snapshotAt(2), floorSlot: 3, decided: [decidedAt(2, "late"), decidedAt(3)] },
          { decided: [decidedAt(1, "below the snapshot: ignored"), decidedAt(4)] },
        ];
        const { wal } = await openWal(dir);
        for (const delta of deltas) {
          wal.append(delta);
          model.apply(delta);
        }
        await wal.close();
        const { wal: reopened, state } = await openWal(dir);
        assert.deepEqual(state, model.snapshot());
        assert.deepEqual(state.snapshot, snapshotAt(2));
        assert.deepEqual(state.log, [decidedAt(3).value, decidedAt(4).value]);
        assert.deepEqual(
          state.accepted.map((entry) => entry.slot),
          [3],
        );
        assert.equal(state.trimmedBelowSlot, 3);
        await reopened.close();
      });
    });

    it("never applies part of a multi-record snapshot write: cut at every record boundary and inside each record", async () => {
      await withDir(async (dir) => {
        const model = new DurableModel();
        const before: DurableDelta[] = [
          { promised: { round: 2, node: 1 }, accepted: [vote(4, 2, "v4"), vote(6, 2, "v6")] },
          { snapshot: snapshotAt(3, 100), floorSlot: 4, decided: [decidedAt(4), decidedAt(5)] },
        ];
        const { wal } = await openWal(dir);
        for (const delta of before) {
          wal.append(delta);
          model.apply(delta);
        }
        await wal.sync();
        const beforeState = model.snapshot();
        const start = wal.stats.diskBytes;
        // One group commit: a snapshot that spans several records (with its floor, the log past it and
        // a promise), then a small delta after it.
        const big: DurableDelta = {
          promised: { round: 3, node: 2 },
          snapshot: snapshotAt(9, 2_500_000),
          floorSlot: 10,
          decided: [decidedAt(9, "superseded"), decidedAt(10)],
        };
        const small: DurableDelta = { proposerRound: 77 };
        wal.append(big);
        const bigEnd = start + wal.stats.pendingBytes;
        wal.append(small);
        await wal.close();
        model.apply(big);
        const bigState = model.snapshot();
        model.apply(small);
        const afterState = model.snapshot();

        const file = join(dir, segmentFileName(1));
        const full = await readFile(file);
        const boundaries = recordBoundaries(full, start);
        assert.equal(boundaries.at(-1), full.length);
        assert.ok(
          boundaries.indexOf(bigEnd) >= 4,
          `the snapshot spans ${boundaries.indexOf(bigEnd)} records`,
        );
        const cuts = new Set<number>();
        for (let i = 0; i < boundaries.length - 1; i++) {
          const [from, to] = [boundaries[i] as number, boundaries[i + 1] as number];
          for (const cut of [from, from + 5, from + 9, Math.floor((from + to) / 2), to - 1]) cuts.add(cut);
        }
        for (const cut of cuts) {
          await writeFile(file, full.subarray(0, cut));
          const reopened = await openWal(dir);
          const expected = cut < bigEnd ? beforeState : cut < full.length ? bigState : afterState;
          assert.deepEqual(reopened.state, expected, `cut at ${cut}`);
          // Spelled out: never the new floor or promise without the snapshot that came with them.
          if (cut < bigEnd) {
            assert.equal(reopened.state.snapshot?.slot, 3);
            assert.equal(reopened.state.trimmedBelowSlot, 4);
            assert.equal(reopened.state.promised.round, 2);
          }
          const survived = cut < bigEnd ? start : bigEnd;
          assert.equal(reopened.wal.stats.tornTailBytes, cut - survived, `cut at ${cut}`);
          await reopened.wal.close();
          assert.equal((await stat(file)).size, survived);
        }
      });
    });

    it("compacts with a decided log and a snapshot into about one checkpoint", async () => {
      await withDir(async (dir) => {
        const model = new DurableModel();
        const { wal } = await openWal(dir, { segmentBytesMax: 8 * 1024 });
        const apply = (delta: DurableDelta) => {
          wal.append(delta);
          model.apply(delta);
        };
        for (let slot = 1; slot <= 400; slot++) {
          apply({ accepted: [vote(slot, 1, `value ${slot}`)], decided: [decidedAt(slot)] });
          if (slot % 50 === 0) await wal.sync(); // segments roll only between commits
        }
        const grown = wal.stats.diskBytes;
        assert.ok(wal.stats.segments > 1);
        assert.equal(wal.stats.bytesSinceCheckpoint, grown - 16 * wal.stats.segments);
        await wal.compact(); // a decided log and no snapshot: it works, and keeps all of it
        assert.equal(wal.stats.segments, 1);
        assert.equal(wal.stats.bytesSinceCheckpoint, 0);
        assert.equal(wal.stats.diskBytes, 16 + wal.stats.checkpointBytes);
        apply({ snapshot: snapshotAt(390, 30_000), floorSlot: 391 });
        await wal.compact();
        const checkpoint = wal.stats.checkpointBytes;
        assert.equal(wal.stats.diskBytes, 16 + checkpoint);
        // The snapshot's state, 10 slots past it, 10 votes: the checkpoint is little more than that.
        const appBytes = Buffer.byteLength(snapshotAt(390, 30_000).app);
        assert.ok(checkpoint > appBytes && checkpoint < appBytes + 1000, `checkpoint of ${checkpoint} bytes`);
        apply({ proposerRound: 5 });
        await wal.close();

        const { wal: reopened, state } = await openWal(dir, { segmentBytesMax: 8 * 1024 });
        assert.deepEqual(state, model.snapshot());
        assert.equal(state.snapshot?.slot, 390);
        assert.equal(state.log.length, 10);
        assert.equal(state.accepted.length, 10);
        assert.equal(reopened.stats.checkpointBytes, checkpoint, "found again on open");
        // The checkpoint segment is full: a seal, then one record of 24 bytes in the next.
        assert.ok(reopened.stats.bytesSinceCheckpoint > 0 && reopened.stats.bytesSinceCheckpoint <= 48);
        let fileBytes = 0;
        for (const name of await segmentFiles(dir)) fileBytes += (await stat(join(dir, name))).size;
        assert.equal(reopened.stats.diskBytes, fileBytes);
        await reopened.close();
      });
    });

    it("a compaction keeps the rejoining mark, and a checkpoint with it survives reopen", async () => {
      await withDir(async (dir) => {
        const { wal } = await openWal(dir);
        wal.append({ rejoining: true });
        wal.append({ decided: [decidedAt(1), decidedAt(2)] });
        await wal.compact();
        await wal.close();
        let reopened = await openWal(dir);
        assert.equal(reopened.state.rejoining, true);
        assert.equal(reopened.state.log.length, 2);
        // The rejoin completes, with its floor, after another compaction.
        reopened.wal.append({ rejoining: false, floorSlot: 3, promised: { round: 4, node: 2 } });
        await reopened.wal.compact();
        await reopened.wal.close();
        reopened = await openWal(dir);
        assert.equal(reopened.state.rejoining, false);
        assert.equal(reopened.state.trimmedBelowSlot, 3);
        assert.deepEqual(reopened.state.promised, { round: 4, node: 2 });
        await reopened.wal.close();
      });
    });

    it("an interrupted compaction of a large snapshot leaves the state before it, cut at any record", async () => {
      await withDir(async (dir) => {
        const model = new DurableModel();
        const deltas: DurableDelta[] = [
          { rejoining: true, promised: { round: 1, node: 3 } },
          { snapshot: snapshotAt(20, 2_200_000), floorSlot: 21, decided: [decidedAt(21)] },
          { accepted: [vote(21, 1, "x"), vote(22, 1, "y")], decided: [decidedAt(22)] },
        ];
        const { wal } = await openWal(dir);
        for (const delta of deltas) {
          wal.append(delta);
          model.apply(delta);
        }
        await wal.sync();
        const old = sealed(await readFile(join(dir, segmentFileName(1))), 1);
        await wal.compact();
        await wal.close();
        const checkpointFile = join(dir, segmentFileName(2));
        const checkpoint = await readFile(checkpointFile);
        const boundaries = recordBoundaries(checkpoint, 16);
        assert.ok(boundaries.length >= 5, `${boundaries.length - 1} records`);
        for (const cut of [...boundaries.slice(0, -1), ...boundaries.slice(1).map((at) => at - 3)]) {
          await writeFile(join(dir, segmentFileName(1)), old);
          await writeFile(checkpointFile, checkpoint.subarray(0, cut));
          const reopened = await openWal(dir);
          assert.deepEqual(reopened.state, model.snapshot(), `cut at ${cut}`);
          assert.equal(reopened.wal.stats.segments, 2, "the old segment stays: the checkpoint is torn");
          assert.equal(reopened.wal.stats.checkpointBytes, 0);
          await reopened.wal.close();
        }
        await writeFile(checkpointFile, checkpoint);
        const reopened = await openWal(dir);
        assert.deepEqual(reopened.state, model.snapshot());
        assert.equal(reopened.wal.stats.segments, 1, "the whole checkpoint replaces the old segment");
        assert.equal(reopened.wal.stats.checkpointBytes, checkpoint.length - 16);
        await reopened.wal.close();
      });
    });

    it("reports a delta cut short in a segment that is not the last as corruption, not a torn tail", async () => {
      await withDir(async (dir) => {
        const { wal } = await openWal(dir, { segmentBytesMax: 4096 });
        wal.append({ snapshot: snapshotAt(5, 1_500_000), floorSlot: 6 });
        await wal.sync();
        wal.append({ proposerRound: 2 }); // rolls: the snapshot's segment is complete
        await wal.close();
        const file = join(dir, segmentFileName(1));
        const full = await readFile(file);
        const boundaries = recordBoundaries(full, 16);
        assert.ok(boundaries.length >= 3);
        await writeFile(file, full.subarray(0, boundaries[1]));
        const error = await openError(dir, { segmentBytesMax: 4096 });
        assert.ok(error.kind === "corrupt" && error.file === segmentFileName(1), JSON.stringify(error));
        assert.equal(error.offset, 16);
        assert.match(error.detail, /without its last record/);
      });
    });

    it("reports a log of format version 1 as corrupt (the node moves it aside and rejoins)", async () => {
      await withDir(async (dir) => {
        const { wal } = await openWal(dir);
        wal.append({ proposerRound: 1 });
        await wal.close();
        const file = join(dir, segmentFileName(1));
        const bytes = await readFile(file);
        bytes.writeUInt32LE(1, 4);
        bytes.writeUInt32LE(crc32(bytes, 0, 12), 12);
        await writeFile(file, bytes);
        const error = await openError(dir);
        assert.ok(error.kind === "corrupt" && error.offset === 0, JSON.stringify(error));
        assert.match(error.detail, /unsupported format version 1/);
      });
    });

    it("stays bounded over 20,000 slots with a snapshot every 500 and a compaction after each", async (t) => {
      await withDir(async (dir) => {
        const model = new DurableModel();
        const { wal } = await openWal(dir);
        const appUnits = 20_000;
        let appBytesMax = 0;
        let diskBytesMax = 0;
        let decidedMax = 0;
        let votesMax = 0;
        let checkpointBytesMax = 0;
        for (let slot = 1; slot <= 20_000; slot++) {
          const round = 1 + Math.floor(slot / 3000);
          const delta: DurableDelta = {
            ...(slot % 3000 === 1 ? { promised: { round, node: 1 } } : {}),
            accepted: [vote(slot, round, `command for slot ${slot}`)],
            decided: [decidedAt(slot)],
          };
          wal.append(delta);
          model.apply(delta);
          if (slot % 500 === 0) {
            const snapshot = snapshotAt(slot, appUnits);
            wal.append({ snapshot, floorSlot: slot + 1 });
            model.apply({ snapshot, floorSlot: slot + 1 });
            await wal.compact();
            // One checkpoint: the state, its sessions, and a few bytes of marks and framing.
            const appBytes = Buffer.byteLength(snapshot.app);
            assert.ok(wal.stats.checkpointBytes < appBytes + 200, `${wal.stats.checkpointBytes} bytes`);
            appBytesMax = Math.max(appBytesMax, appBytes);
            checkpointBytesMax = Math.max(checkpointBytesMax, wal.stats.checkpointBytes);
            assert.equal(wal.stats.segments, 1);
          } else if (slot % 50 === 0) {
            await wal.sync();
          }
          diskBytesMax = Math.max(diskBytesMax, wal.stats.diskBytes);
          decidedMax = Math.max(decidedMax, model.decidedCount);
          votesMax = Math.max(votesMax, model.size);
        }
        t.diagnostic(
          `disk: at most ${diskBytesMax} bytes, checkpoints at most ${checkpointBytesMax} bytes ` +
            `(states up to ${appBytesMax} bytes), after the last compaction ${wal.stats.diskBytes} bytes; ` +
            `model: at most ${decidedMax} decided slots and ${votesMax} votes`,
        );
        assert.ok(decidedMax <= 500 && votesMax <= 500, `${decidedMax} decided, ${votesMax} votes`);
        assert.equal(model.decidedCount, 0);
        assert.equal(model.size, 0);
        // One checkpoint plus what 500 slots append before the next compaction.
        assert.ok(diskBytesMax < checkpointBytesMax + 500 * 200, `disk grew to ${diskBytesMax} bytes`);
        assert.equal(wal.stats.diskBytes, 16 + wal.stats.checkpointBytes);
        assert.equal(wal.stats.compactions, 40);
        await wal.close();
        const reopened = await openWal(dir);
        assert.deepEqual(reopened.state, model.snapshot());
        assert.equal(reopened.state.snapshot?.slot, 20_000);
        await reopened.wal.close();
      });
    });
  });
}
