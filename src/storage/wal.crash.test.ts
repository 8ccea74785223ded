import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { type AcceptedEntry, type DurableDelta, Prng } from "../core/index.js";
import { type FsOperation, MemoryFileSystem } from "./memory-fs.js";
import { DurableModel, type DurableState } from "./storage.js";
import { WalStorage } from "./wal.js";

const DIR = "/data/node-1";

/** A random delta: promises, rounds and votes, some large (several sectors), some holding zeros. */
function randomDelta(prng: Prng): DurableDelta {
  const delta: { -readonly [K in keyof DurableDelta]: DurableDelta[K] } = {};
  if (prng.chance(0.3)) delta.promised = { round: prng.int(100), node: prng.int(5) };
  if (prng.chance(0.2)) delta.proposerRound = prng.int(100);
  if (prng.chance(0.7) || (delta.promised === undefined && delta.proposerRound === undefined)) {
    const votes: AcceptedEntry[] = [];
    for (let i = prng.range(1, 3); i > 0; i--) {
      const size = prng.pick([0, 3, 40, 700, 3000]);
      const payload = prng.chance(0.2) ? "\0".repeat(size) : `v${prng.int(1000)}`.padEnd(size, "x");
      votes.push({
        slot: prng.range(1, 20),
        ballot: { round: prng.int(100), node: prng.int(5) },
        value: { commands: [{ client: prng.range(1, 4), seq: prng.range(1, 1000), payload }] },
      });
    }
    delta.accepted = votes;
  }
  return delta;
}

/** The k in [from, deltas.length] whose prefix leaves `state`, or -1. */
function prefixLength(state: DurableState, deltas: readonly DurableDelta[], from: number): number {
  const model = new DurableModel();
  for (let k = 0; k <= deltas.length; k++) {
    if (k >= from && isDeepStrictEqual(model.snapshot(), state)) return k;
    if (k < deltas.length) model.apply(deltas[k] as DurableDelta);
  }
  return -1;
}

interface Outcome {
  crashes: number;
  tornTails: number;
  flips: number;
  flipsReported: number;
}

/**
 * One seeded run: rounds of open, appends, syncs and compactions, then a power cut (sometimes
 * during a sync, sometimes with a synced bit flipped first), checking each reopen against the disk
 * model's promise (docs/durability.md, "Disk model and recovery rules").
 */
async function run(seed: number, outcome: Outcome): Promise<void> {
  const prng = new Prng(seed);
  const fs = new MemoryFileSystem({ sectorBytes: prng.pick([512, 4096]) });
  const segmentBytesMax = prng.pick([700, 4096, 64 * 1024]);
  /** Deltas that may be on disk, in order; the first `synced` of them certainly are. */
  let deltas: DurableDelta[] = [];
  let synced = 0;
  for (let round = 0; round < 4; round++) {
    const wal = new WalStorage({ dir: DIR, fs, segmentBytesMax });
    const opened = await wal.open();
    assert.ok(opened.ok, `seed ${seed} round ${round}: ${JSON.stringify(opened.ok ? "" : opened.error)}`);
    assert.equal(wal.fresh, round === 0, `seed ${seed} round ${round}: fresh`);
    const k = prefixLength(opened.value, deltas, synced);
    assert.ok(k !== -1, `seed ${seed} round ${round}: not a prefix holding the ${synced} synced deltas`);
    if (wal.stats.tornTailBytes > 0) outcome.tornTails++;
    // What open reported is durable now: it synced it.
    deltas = deltas.slice(0, k);
    synced = k;

    for (let op = prng.range(1, 30); op > 0; op--) {
      const pick = prng.int(10);
      if (pick < 6) {
        const delta = randomDelta(prng);
        wal.append(delta);
        deltas.push(delta);
      } else if (pick < 9) {
        const appended = deltas.length;
        await wal.sync();
        synced = appended;
      } else {
        const appended = deltas.length;
        await wal.compact();
        synced = appended;
      }
    }
    for (let op = prng.range(0, 3); op > 0; op--) {
      const delta = randomDelta(prng);
      wal.append(delta);
      deltas.push(delta);
    }

    // Sometimes the power fails during a sync: its write is issued, its sync has not returned.
    const held: (() => void)[] = [];
    if (prng.chance(0.5)) {
      let requested: () => void = () => undefined;
      const syncRequested = new Promise<void>((resolve) => (requested = resolve));
      fs.scheduler = (operation: FsOperation) => {
        if (operation.kind !== "sync" && operation.kind !== "datasync" && operation.kind !== "syncDirectory")
          return undefined;
        requested();
        return new Promise<void>((resolve) => held.push(resolve));
      };
      const writes = wal.stats.pendingRecords > 0;
      const syncing = wal.sync();
      syncing.catch(() => undefined); // it fails: the machine crashes under it
      if (writes) await syncRequested;
    }

    // Sometimes synced bytes rot before the crash.
    const flipped = prng.chance(0.25);
    if (flipped) {
      const names = (await fs.readdir(DIR)).filter((name) => name.startsWith("wal-"));
      const candidates = names.filter((name) => fs.syncedSize(`${DIR}/${name}`) > 0);
      const victim = prng.pick(candidates);
      fs.flipRandomBit(`${DIR}/${victim}`, prng);
      outcome.flips++;
    }
    fs.crash(prng);
    outcome.crashes++;
    fs.scheduler = null;
    for (const release of held) release();

    if (flipped) {
      const reopened = await new WalStorage({ dir: DIR, fs, segmentBytesMax }).open();
      if (!reopened.ok) {
        assert.equal(reopened.error.kind, "corrupt", `seed ${seed}: ${JSON.stringify(reopened.error)}`);
        outcome.flipsReported++;
        return;
      }
      // The flip hit bytes that hold nothing (padding, a file the open deletes): everything synced
      // must still be there.
      assert.ok(
        prefixLength(reopened.value, deltas, synced) !== -1,
        `seed ${seed} round ${round}: a flipped bit lost synced deltas silently`,
      );
      return;
    }
  }
}

describe("WalStorage under the disk model (MemoryFileSystem crashes)", () => {
  it("after any crash, open returns a prefix of the deltas holding every synced one, or reports rot", async (t) => {
    const outcome: Outcome = { crashes: 0, tornTails: 0, flips: 0, flipsReported: 0 };
    for (let seed = 1; seed <= 400; seed++) await run(seed, outcome);
    t.diagnostic(JSON.stringify(outcome));
    assert.ok(outcome.tornTails > 20, "torn tails happen and are cut off");
    assert.ok(outcome.flipsReported > outcome.flips * 0.8, "nearly every flipped bit is reported");
  });
});
