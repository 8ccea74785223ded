import { type Ballot, type DurableDelta, type Result, ZERO_BALLOT } from "../core/index.js";
import {
  type CompactOptions,
  type DurableState,
  MemoryStorage,
  type Storage,
  type StorageError,
  type StorageStats,
} from "../storage/index.js";

/**
 * One simulated process's disk: the real `MemoryStorage` (the one durable-state model, `DurableModel`
 * in storage/) with the latency of a disk. `sync()` and `compact()` complete as simulator events (in
 * the order they were asked for), so a crash in between loses what was appended and not yet synced:
 * `crash()` makes the syncs in flight never complete, and the next `open()` drops the unsynced
 * writes, as `MemoryStorage.open()` does on a restart.
 *
 * It outlives the processes that use it (one per incarnation); a disk fault that loses the state
 * replaces it with an empty one.
 */
export class SimDisk implements Storage {
  readonly memory = new MemoryStorage();
  /** Counts crashes: a sync asked for before the last crash never completes. */
  private epoch = 0;
  /** The promised ballot appended since the last completed sync (null: none). */
  private appendedPromised: Ballot | null = null;
  private durablePromised: Ballot = ZERO_BALLOT;
  /** The promise made durable before the newest one (for the broken variant `forgetNewestPromise`). */
  priorPromised: Ballot = ZERO_BALLOT;

  /** @param complete runs a callback after a disk write's latency, as a simulator event. */
  constructor(private readonly complete: (done: () => void) => void) {}

  /** The process crashed: syncs in flight never complete; unsynced writes are lost at the next `open()`. */
  crash(): void {
    this.epoch++;
  }

  async open(): Promise<Result<DurableState, StorageError>> {
    this.appendedPromised = null;
    return this.memory.open();
  }

  append(delta: DurableDelta): void {
    if (delta.promised !== undefined) this.appendedPromised = delta.promised;
    this.memory.append(delta);
  }

  sync(): Promise<void> {
    return this.afterLatency(() => this.memory.sync());
  }

  compact(options?: CompactOptions): Promise<void> {
    return this.afterLatency(() => this.memory.compact(options));
  }

  close(options?: { readonly sync?: boolean }): Promise<void> {
    return this.memory.close(options);
  }

  /** The durable state now (what the next `open()` returns). */
  state(): DurableState {
    return this.memory.state();
  }

  get stats(): StorageStats {
    return this.memory.stats;
  }

  private afterLatency(write: () => Promise<void>): Promise<void> {
    const epoch = this.epoch;
    return new Promise((resolve, reject) => {
      this.complete(() => {
        if (epoch !== this.epoch) return; // crashed meanwhile: this write never completes
        const promised = this.appendedPromised;
        write().then(() => {
          if (promised !== null && promised !== this.durablePromised) {
            this.priorPromised = this.durablePromised;
            this.durablePromised = promised;
            if (this.appendedPromised === promised) this.appendedPromised = null;
          }
          resolve();
        }, reject);
      });
    });
  }
}
