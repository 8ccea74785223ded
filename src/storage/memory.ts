import type { DurableDelta, Result } from "../core/index.js";
import { assert, ok } from "../core/index.js";
import {
  type CompactOptions,
  copyDelta,
  DurableModel,
  type DurableState,
  type Storage,
  type StorageError,
  type StorageStats,
} from "./storage.js";

/**
 * Storage in memory, for tests, the simulator and `paxos node` without `--data`. `sync()` makes
 * appended deltas "durable" at once; `open()` may be called again to model a restart: it drops what
 * was appended but not synced, as a crash would, and returns the durable state.
 *
 * @example
 * const storage = new MemoryStorage();
 * await storage.open();
 * storage.append({ promised: { round: 1, node: 1 } });
 * await storage.sync();
 * (await storage.open()).ok; // true, and .value.promised is 1.1
 */
export class MemoryStorage implements Storage {
  private readonly durable = new DurableModel();
  private pending: DurableDelta[] = [];
  private opened = false;
  private counters = { records: 0, syncs: 0, compactions: 0 };
  private everSynced = false;
  private foundNothing = true;

  /** After `open()`: nothing was ever synced before it (see {@link Storage.fresh}). */
  get fresh(): boolean {
    return this.foundNothing;
  }

  async open(): Promise<Result<DurableState, StorageError>> {
    this.foundNothing = !this.everSynced;
    this.pending = [];
    this.opened = true;
    this.counters = { records: 0, syncs: 0, compactions: 0 };
    return ok(this.durable.snapshot());
  }

  append(delta: DurableDelta): void {
    assert(this.opened, "MemoryStorage.append before open");
    this.pending.push(copyDelta(delta));
    this.counters.records++;
  }

  async sync(): Promise<void> {
    assert(this.opened, "MemoryStorage.sync before open");
    if (this.pending.length === 0) return;
    for (const delta of this.pending) this.durable.apply(delta);
    this.pending = [];
    this.everSynced = true;
    this.counters.syncs++;
  }

  async compact(options: CompactOptions = {}): Promise<void> {
    await this.sync();
    this.durable.trim(options.trimBelowSlot ?? 0);
    this.counters.compactions++;
  }

  async close(options: { readonly sync?: boolean } = {}): Promise<void> {
    if (!this.opened) return;
    if (options.sync ?? true) await this.sync();
    this.pending = [];
    this.opened = false;
  }

  /** The durable state now (what `open()` would return after a crash). */
  state(): DurableState {
    return this.durable.snapshot();
  }

  get stats(): StorageStats {
    return {
      records: this.counters.records,
      bytes: 0,
      bytesSinceCheckpoint: 0,
      checkpointBytes: 0,
      syncs: this.counters.syncs,
      directorySyncs: 0,
      lastSyncMs: 0,
      pendingRecords: this.pending.length,
      pendingBytes: 0,
      tornTailBytes: 0,
      segments: 0,
      diskBytes: 0,
      compactions: this.counters.compactions,
    };
  }
}
