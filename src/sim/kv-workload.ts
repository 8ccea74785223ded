import type { Command, Prng } from "../core/index.js";
import { checkHistory, kvModel, operationsOf } from "../lincheck/index.js";
import {
  type AppCommand,
  type AppResult,
  KvLockApp,
  type LockGrant,
  PaxosError,
  type PaxosNode,
  SessionMachine,
} from "../rsm/index.js";
import type { ReferenceApp } from "./checker.js";
import { TraceHash } from "./hash.js";

/**
 * The key-value and lock clients of a simulated run (`Scenario.kv`): application clients, like the
 * HTTP API's callers, that call the real `PaxosNode` of whichever replica they pick (propose,
 * linearizable read, sessions), record a Jepsen-style history, and fail over to another node when a
 * call fails or its outcome is unknown. The history is checked for linearizability at the end.
 */

/** How a seed's key-value workload runs. */
export interface KvSettings {
  /** Clients doing get/put/append/delete on `keys` keys. */
  readonly clients: number;
  readonly keys: number;
  /** Operations each client starts (during the fault phase; the last ones finish after healing). */
  readonly opsPerClient: number;
  /** Clients taking and releasing one lock. */
  readonly lockClients: number;
  /** Session time-to-live, in the log's time (simulated milliseconds: steps). */
  readonly sessionTtlMs: number;
  /** How long a call waits before its outcome counts as unknown, in steps. */
  readonly callTimeoutSteps: number;
}

/** What the workload needs from the simulation. */
export interface KvWorld {
  /** The node of replica `index` (0-based) if it is up, else null. */
  node(index: number): PaxosNode<AppCommand, AppResult, KvLockApp> | null;
  readonly replicas: number;
  /** Runs `fn` after `steps` simulated steps. */
  after(steps: number, fn: () => void): void;
  /** A position in the run's event order (for the history). */
  now(): number;
}

type Kind = "get" | "put" | "append" | "delete";

interface Record {
  readonly process: number;
  readonly f: Kind;
  readonly key: string;
  readonly input: string | null;
  readonly callAt: number;
  output: string | null | undefined;
  outcome: "ok" | "info" | "fail" | null;
  returnAt: number;
}

/** Think time between a client's operations, in steps (random in [1, this]). */
const THINK_STEPS_MAX = 40;
/** Steps between a lock holder's keepalives (well below any session TTL drawn). */
const KEEPALIVE_STEPS = 150;

export class KvWorkload {
  private readonly records: Record[] = [];
  /** Operations started, and finished (ok, fail or given up as unknown). */
  private started = 0;
  private finished = 0;
  private stopping = false;
  readonly lockGrants: { client: number; token: number; session: number }[] = [];
  private readonly errors = new Map<string, number>();
  /** The leader a node last named in a `not-leader` answer (1-based), if any. */
  private leaderHint: number | null = null;

  constructor(
    private readonly settings: KvSettings,
    private readonly prng: Prng,
    private readonly world: KvWorld,
  ) {}

  /** Starts every client (a random delay each). */
  start(): void {
    for (let c = 1; c <= this.settings.clients; c++)
      this.world.after(1 + this.prng.int(THINK_STEPS_MAX), () => this.kvClient(c, 0, null, 0));
    for (let c = 1; c <= this.settings.lockClients; c++)
      this.world.after(1 + this.prng.int(THINK_STEPS_MAX), () => this.lockClient(100 + c, null));
  }

  /** No new operations from now on (the network has healed: what is running must finish). */
  stop(): void {
    this.stopping = true;
  }

  /** Every operation started has finished. */
  get done(): boolean {
    return this.started === this.finished;
  }

  /** Operations by outcome, and failures by code (for the report). */
  summary(): string {
    const by = { ok: 0, fail: 0, info: 0 };
    for (const r of this.records) if (r.outcome !== null) by[r.outcome]++;
    const errors = [...this.errors].map(([code, n]) => `${code} ${n}`).join(", ");
    return `kv: ${this.records.length} operations (ok ${by.ok}, fail ${by.fail}, unknown ${by.info}); lock grants ${this.lockGrants.length}${errors ? `; errors: ${errors}` : ""}`;
  }

  /** The history's verdict: null if linearizable, else why not (or why it could not be told). */
  check(): string | null {
    const operations = operationsOf(this.records);
    const result = checkHistory(kvModel, operations, { stepsMax: 20_000_000, memoEntriesMax: 1_000_000 });
    if (result.verdict === "linearizable") return null;
    if (result.verdict === "unknown") return `the checker's budget ran out (${operations.length} operations)`;
    const failure = result.failure;
    if (failure === null)
      return `not linearizable (key ${result.keys.find((k) => k.verdict !== "linearizable")?.key})`;
    const shown = failure.prefix
      .slice(-6)
      .map(
        (o) =>
          `${o.process}:${o.f}(${JSON.stringify(o.input)})=${o.outcome === "ok" ? JSON.stringify(o.output) : "?"}`,
      )
      .join(" ");
    return `key ${failure.key} not linearizable at ${failure.culprit.process}:${failure.culprit.f}: ... ${shown}`;
  }

  // --- a key-value client ---------------------------------------------------------------------------

  /**
   * One client: opens a session, then runs `opsPerClient` operations one at a time. `session`/`seq`:
   * its session and the seq of its next write (every retry of a write reuses its seq).
   */
  private kvClient(process: number, done: number, session: number | null, seq: number): void {
    if (this.stopping || done >= this.settings.opsPerClient) return;
    if (session === null) {
      this.call(
        (node) => node.openSession(),
        (opened) => this.kvClient(process, done, opened, 0),
        () => this.world.after(10 + this.prng.int(50), () => this.kvClient(process, done, null, 0)),
      );
      return;
    }
    const key = `k${this.prng.int(this.settings.keys)}`;
    const f = this.prng.pick(["get", "get", "put", "append", "append", "delete"] as const);
    const input = f === "put" || f === "append" ? `${process}.${done + 1};` : null;
    const record: Record = {
      process,
      f,
      key,
      input,
      callAt: this.world.now(),
      output: undefined,
      outcome: null,
      returnAt: 0,
    };
    this.records.push(record);
    this.started++;
    const next = (nextSession: number | null, nextSeq: number) =>
      this.world.after(1 + this.prng.int(THINK_STEPS_MAX), () =>
        this.kvClient(process, done + 1, nextSession, nextSeq),
      );
    if (f === "get") {
      this.attempt(
        record,
        (node) => node.read((app) => app.get(key)?.value ?? null),
        (value) => value,
        () => next(session, seq),
        3,
      );
      return;
    }
    const command: AppCommand =
      f === "delete" ? { op: "delete", key } : { op: f, key, value: input as string };
    const writeSeq = seq + 1;
    this.attempt(
      record,
      (node) => node.propose(command, { session: { session, seq: writeSeq } }),
      (result) => {
        if (!result.ok) throw new PaxosError("bad-request", `${f} failed: ${result.message}`);
        return null;
      },
      (expired) => next(expired ? null : session, writeSeq),
      4,
    );
  }

  /**
   * Runs `call` on a random live node until it gives a definite outcome, at most `tries` times (the
   * same write, the same seq: exactly once). A definite failure (nothing done) ends the operation as
   * `fail` if no earlier try's outcome was unknown; otherwise, and when the tries run out after an
   * unknown outcome, the operation stays of unknown outcome (`info`).
   */
  private attempt<T>(
    record: Record,
    call: (node: PaxosNode<AppCommand, AppResult, KvLockApp>) => Promise<T>,
    output: (value: T) => string | null,
    then: (sessionExpired: boolean) => void,
    tries: number,
    unknownBefore = false,
  ): void {
    const finish = (outcome: "ok" | "info" | "fail", value?: string | null) => {
      record.outcome = outcome;
      record.output = value;
      record.returnAt = this.world.now();
      this.finished++;
    };
    const retry = (unknown: boolean, expired: boolean) => {
      if (tries > 1 && !expired) {
        this.world.after(5 + this.prng.int(30), () =>
          this.attempt(record, call, output, then, tries - 1, unknown),
        );
        return;
      }
      finish(unknown ? "info" : "fail");
      then(expired);
    };
    this.call(
      call,
      (value) => {
        let out: string | null;
        try {
          out = output(value);
        } catch (error) {
          this.count(error);
          finish(unknownBefore ? "info" : "fail");
          then(false);
          return;
        }
        finish("ok", out);
        then(false);
      },
      (error) => {
        const unknown = unknownBefore || error.outcomeUnknown;
        retry(unknown, error.code === "session-expired");
      },
    );
  }

  /**
   * Calls a random live node, with a timeout in simulated time (the node's own timeouts are longer
   * than a run's patience); `fail` gets a `PaxosError` (a node down counts as `no-leader`).
   */
  private call<T>(
    call: (node: PaxosNode<AppCommand, AppResult, KvLockApp>) => Promise<T>,
    ok: (value: T) => void,
    fail: (error: PaxosError) => void,
  ): void {
    // Mostly to the leader a node last named (as a client library would), else anywhere: calls
    // reach followers too (they forward proposals, and must refuse reads).
    const hinted = this.leaderHint !== null && this.prng.chance(0.75);
    const index = hinted ? (this.leaderHint as number) - 1 : this.prng.int(this.world.replicas);
    const node = this.world.node(index);
    if (node === null) {
      this.count(new PaxosError("no-leader", "node down"));
      this.world.after(1, () => fail(new PaxosError("no-leader", `replica ${index + 1} is down`)));
      return;
    }
    let settled = false;
    this.world.after(this.settings.callTimeoutSteps, () => {
      if (settled) return;
      settled = true;
      this.count(new PaxosError("timeout", "client timeout"));
      fail(new PaxosError("timeout", "no answer in time"));
    });
    call(node).then(
      (value) => {
        if (settled) return;
        settled = true;
        ok(value);
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        const paxos =
          error instanceof PaxosError ? error : new PaxosError("stopped", `unexpected: ${String(error)}`);
        if (paxos.code === "not-leader" && paxos.leader !== null) this.leaderHint = paxos.leader;
        this.count(paxos);
        fail(paxos);
      },
    );
  }

  private count(error: unknown): void {
    const code = error instanceof PaxosError ? error.code : "other";
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  // --- a lock client --------------------------------------------------------------------------------

  /**
   * Takes lock "L" in a session, holds it a while (keeping the session alive), releases it, again.
   * `seq`: the session's last seq used (a new session starts at 0).
   */
  private lockClient(process: number, session: number | null, seq = { value: 0 }): void {
    if (this.stopping) return;
    if (session === null) {
      this.call(
        (node) => node.openSession(),
        (opened) => this.lockClient(process, opened),
        () => this.world.after(20 + this.prng.int(50), () => this.lockClient(process, null)),
      );
      return;
    }
    const propose = (command: AppCommand, done: (result: AppResult | null, expired: boolean) => void) => {
      const mine = ++seq.value;
      const go = (tries: number) =>
        this.call(
          (node) => node.propose(command, { session: { session, seq: mine } }),
          (result) => done(result, false),
          (error) => {
            if (error.code === "session-expired") done(null, true);
            else if (tries > 1) this.world.after(10 + this.prng.int(30), () => go(tries - 1));
            else done(null, false);
          },
        );
      go(6);
    };
    propose({ op: "acquire", name: "L" }, (result, expired) => {
      if (expired || result === null) {
        this.world.after(50, () => this.lockClient(process, expired ? null : session, seq));
        return;
      }
      if (result.ok && "status" in result && result.status === "granted")
        this.lockGrants.push({ client: process, token: result.token, session });
      // Granted or queued: hold (or wait) for a while, keeping the session alive, then release.
      let beats = 1 + this.prng.int(4);
      const beat = () => {
        if (beats-- <= 0) {
          propose({ op: "release", name: "L" }, (_released, gone) =>
            this.world.after(20 + this.prng.int(60), () =>
              this.lockClient(process, gone ? null : session, seq),
            ),
          );
          return;
        }
        this.call(
          (node) => node.keepAlive(session),
          () => this.world.after(KEEPALIVE_STEPS, beat),
          (error) => {
            if (error.code === "session-expired") this.world.after(50, () => this.lockClient(process, null));
            else this.world.after(KEEPALIVE_STEPS, beat);
          },
        );
      };
      this.world.after(KEEPALIVE_STEPS, beat);
    });
  }
}

/**
 * The checker's reference application in key-value runs: the same session machine and application
 * every replica runs, fed the agreed decided sequence. States are kept as hashes of their snapshot
 * text (a state is kilobytes; the checker keeps one per slot).
 */
export class KvReference implements ReferenceApp {
  private readonly machine: SessionMachine<AppCommand, AppResult>;

  /**
   * `applyRetries`, `grantWhileHeld`: the replicas' deliberate bugs (`SimBugs`), built into the
   * reference too, so that only the clients' history and the lock checker can tell.
   */
  constructor(settings: KvSettings, applyRetries = false, grantWhileHeld = false) {
    const app = new KvLockApp(grantWhileHeld ? { lockBugs: { grantWhileHeld } } : {});
    this.machine = new SessionMachine<AppCommand, AppResult>(app, {
      sessionTtlMs: settings.sessionTtlMs,
      ...(applyRetries ? { bugs: { applyRetries } } : {}),
    });
  }

  applySlot(slot: number, commands: readonly Command[]): void {
    this.machine.apply({ slot, value: { commands: [...commands] }, commands });
  }

  encode(): string {
    return this.fingerprint(this.machine.snapshot());
  }

  fingerprint(app: string): string {
    const hash = new TraceHash();
    hash.update(app);
    return hash.digest();
  }
}

/**
 * The lock checker of one replica's application: every grant of a lock comes after its previous
 * holder gave it up (a release, or its session expired through the log), and every grant's fencing
 * token is above every token before it. It follows the application's own grant and free events in
 * apply order, and starts over from the application's holders whenever its state is replaced (a
 * snapshot restored or installed).
 */
export class LockWatch {
  private readonly holders = new Map<string, LockGrant>();
  private lastToken = 0;

  constructor(
    private readonly where: string,
    private readonly fail: (detail: string) => void,
  ) {}

  grant(grant: LockGrant): void {
    const held = this.holders.get(grant.name);
    if (held !== undefined && held.client !== grant.client)
      this.fail(
        `${this.where}: lock "${grant.name}" granted to session ${grant.client} (token ${grant.token}) while session ${held.client} held it (token ${held.token}), with no release or expiry`,
      );
    if (grant.token <= this.lastToken)
      this.fail(
        `${this.where}: lock "${grant.name}" granted with token ${grant.token}, not above ${this.lastToken}`,
      );
    this.lastToken = Math.max(this.lastToken, grant.token);
    this.holders.set(grant.name, grant);
  }

  free(name: string, client: number): void {
    if (this.holders.get(name)?.client === client) this.holders.delete(name);
  }

  /** The application's state was replaced: its holders and last token are where checking resumes. */
  reset(holders: readonly LockGrant[], lastToken: number): void {
    this.holders.clear();
    for (const grant of holders) this.holders.set(grant.name, grant);
    this.lastToken = lastToken;
  }
}
