import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { AcceptedEntry, Ballot, Command, DurableDelta, SlotValue } from "../core/index.js";
import { DurableModel } from "./storage.js";
import { WalStorage } from "./wal.js";

type Operation =
  | { readonly kind: "append"; readonly delta: DurableDelta }
  | { readonly kind: "sync" }
  | { readonly kind: "compact"; readonly trimBelowSlot: number }
  /** The process dies: what was appended but not synced is gone. */
  | { readonly kind: "crash" }
  /** The machine dies during a commit: only part of it (cut at `fraction`) reached the disk. */
  | { readonly kind: "torn-crash"; readonly fraction: number };

// Plain objects (fc.record may make them with a null prototype, which deepEqual tells apart).
const plain = <T extends object>(value: T): T => ({ ...value });
const ballotArbitrary: fc.Arbitrary<Ballot> = fc.record({ round: fc.nat(50), node: fc.nat(5) }).map(plain);
// Any UTF-16 code unit, lone surrogates included: votes must come back exactly as cast.
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
const commandArbitrary: fc.Arbitrary<Command> = fc
  .record({
    client: fc.integer({ min: 1, max: 4 }),
    seq: fc.integer({ min: 1, max: 2 ** 40 }),
    payload: fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: codeUnit, maxLength: 6 })),
  })
  .map(plain);
const entryArbitrary: fc.Arbitrary<AcceptedEntry> = fc
  .record({
    slot: fc.integer({ min: 1, max: 25 }),
    ballot: ballotArbitrary,
    value: fc.record({ commands: fc.array(commandArbitrary, { maxLength: 3 }) }).map(plain),
  })
  .map(plain);
const voteDeltaArbitrary: fc.Arbitrary<DurableDelta> = fc
  .record(
    {
      promised: ballotArbitrary,
      proposerRound: fc.nat(1000),
      accepted: fc.array(entryArbitrary, { minLength: 1, maxLength: 4 }),
    },
    { requiredKeys: [] },
  )
  .map(plain);
const decidedArbitrary: fc.Arbitrary<SlotValue> = entryArbitrary.map(({ slot, value }) => ({ slot, value }));
/**
 * A snapshot's state: mostly short (non-ASCII, surrogate pairs, now and then a lone surrogate),
 * sometimes 1.1 to 2.2 million code units of one repeated text, so that it spans several records.
 */
const appArbitrary: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 4, arbitrary: fc.string({ unit: "binary", maxLength: 10 }) },
  { weight: 1, arbitrary: fc.string({ unit: codeUnit, maxLength: 6 }) },
  {
    weight: 3,
    arbitrary: fc
      .record({
        text: fc.constantFrom("a", "é", "漢字", "🎉", "x🎉y"),
        units: fc.integer({ min: 1_100_000, max: 2_200_000 }),
      })
      .map(({ text, units }) => text.repeat(Math.ceil(units / text.length))),
  },
);
// As a replica persists one: the snapshot, the floor past it, and maybe a promise and decided slots
// on either side of it (those at or below it are superseded).
const snapshotDeltaArbitrary: fc.Arbitrary<DurableDelta> = fc
  .record(
    {
      slot: fc.integer({ min: 1, max: 30 }),
      sessions: fc.array(fc.oneof(fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER)), { maxLength: 6 }),
      app: appArbitrary,
      decided: fc.array(decidedArbitrary, { maxLength: 4 }),
      promised: fc.option(ballotArbitrary, { nil: undefined }),
    },
    { requiredKeys: ["slot", "sessions", "app"] },
  )
  .map(({ slot, sessions, app, decided, promised }) => ({
    snapshot: { slot, sessions, app },
    floorSlot: slot + 1,
    ...(decided !== undefined && decided.length > 0 ? { decided } : {}),
    ...(promised !== undefined ? { promised } : {}),
  }));
const deltaArbitrary: fc.Arbitrary<DurableDelta> = fc.oneof(
  { weight: 6, arbitrary: voteDeltaArbitrary },
  {
    weight: 3,
    arbitrary: fc.array(decidedArbitrary, { minLength: 1, maxLength: 5 }).map((decided) => ({ decided })),
  },
  { weight: 3, arbitrary: snapshotDeltaArbitrary },
  { weight: 1, arbitrary: fc.boolean().map((rejoining) => ({ rejoining })) },
  { weight: 1, arbitrary: fc.nat(30).map((floorSlot) => ({ floorSlot })) },
);
const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 8, arbitrary: deltaArbitrary.map((delta) => ({ kind: "append" as const, delta })) },
  { weight: 3, arbitrary: fc.constant({ kind: "sync" as const }) },
  { weight: 2, arbitrary: fc.nat(20).map((trimBelowSlot) => ({ kind: "compact" as const, trimBelowSlot })) },
  { weight: 1, arbitrary: fc.constant({ kind: "crash" as const }) },
  {
    weight: 1,
    // Uniform (fc.double favours 0 and other edges, which would rarely cut inside a large write).
    arbitrary: fc
      .integer({ min: 0, max: 999_999 })
      .map((millionths) => ({ kind: "torn-crash" as const, fraction: millionths / 1_000_000 })),
  },
);

const SEGMENT_BYTES_MAX = 400;

async function lastSegment(dir: string): Promise<{ name: string; size: number }> {
  const name = (await readdir(dir))
    .filter((file) => file.startsWith("wal-"))
    .sort()
    .at(-1) as string;
  return { name, size: (await stat(join(dir, name))).size };
}

/** What the segment files hold, in bytes: `stats.diskBytes` must say the same. */
async function filesBytes(dir: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(dir))
    if (name.startsWith("wal-")) bytes += (await stat(join(dir, name))).size;
  return bytes;
}

async function reopen(dir: string, durable: DurableModel): Promise<WalStorage> {
  const wal = new WalStorage({ dir, segmentBytesMax: SEGMENT_BYTES_MAX });
  const opened = await wal.open();
  assert.ok(opened.ok, opened.ok ? "" : JSON.stringify(opened.error));
  try {
    assert.deepEqual(opened.value, durable.snapshot());
    assert.equal(wal.stats.diskBytes, await filesBytes(dir));
  } catch (error) {
    await wal.close({ sync: false });
    throw error;
  }
  return wal;
}

describe("WalStorage (property)", () => {
  it("after any crash, open returns exactly what was synced, as the in-memory model says", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(operationArbitrary, { minLength: 10, maxLength: 60 }), async (operations) => {
        const dir = await mkdtemp(join(tmpdir(), "paxos-wal-property-"));
        const durable = new DurableModel();
        // Appended, not yet synced, with where each one's record ends in the write buffer.
        let pending: { delta: DurableDelta; end: number }[] = [];
        let pendingBytes = 0;
        const settle = (survivors = pending.length) => {
          for (const { delta } of pending.slice(0, survivors)) durable.apply(delta);
          pending = [];
          pendingBytes = 0;
        };
        let wal = await reopen(dir, durable);
        try {
          for (const operation of operations) {
            switch (operation.kind) {
              case "append":
                wal.append(operation.delta);
                pendingBytes = wal.stats.pendingBytes;
                pending.push({ delta: operation.delta, end: pendingBytes });
                break;
              case "sync":
                await wal.sync();
                settle();
                break;
              case "compact":
                await wal.compact({ trimBelowSlot: operation.trimBelowSlot });
                settle();
                durable.trim(operation.trimBelowSlot);
                // Everything is in the one checkpoint now: the older segments are gone.
                assert.equal(wal.stats.segments, 1);
                assert.equal(wal.stats.diskBytes, 16 + wal.stats.checkpointBytes);
                assert.equal(wal.stats.diskBytes, await filesBytes(dir));
                break;
              case "crash":
                await wal.close({ sync: false });
                settle(0);
                wal = await reopen(dir, durable);
                break;
              case "torn-crash": {
                if (pending.length === 0) break;
                const before = await lastSegment(dir);
                await wal.sync();
                await wal.close({ sync: false });
                const after = await lastSegment(dir);
                // A roll's new header was synced before the commit's write began.
                const start = after.name === before.name ? before.size : 16;
                assert.equal(after.size - start, pendingBytes);
                const cut = start + Math.floor(operation.fraction * pendingBytes);
                await truncate(join(dir, after.name), cut);
                // The deltas whose last record is wholly before the cut survive, whole; a delta cut
                // anywhere in its records (a snapshot spans several) is gone, whole.
                settle(pending.filter(({ end }) => start + end <= cut).length);
                wal = await reopen(dir, durable);
                // The repaired log goes on where the last whole delta ended: what follows must not
                // join the leftovers of a delta the crash cut short.
                const marker: DurableDelta = { promised: { round: 99, node: 9 } };
                wal.append(marker);
                await wal.close();
                durable.apply(marker);
                wal = await reopen(dir, durable);
                break;
              }
            }
          }
          await wal.close();
          settle();
          wal = await reopen(dir, durable);
          await wal.close();
        } finally {
          await wal.close({ sync: false });
          await rm(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  });
});
