import {
  describeRun,
  describeScenario,
  type RunResult,
  Simulation,
  type StrayOptions,
  scenarioForSeed,
  type TraceEvent,
  type Violation,
} from "../sim/index.js";
import { REPLAY_VARIANTS } from "./replay-variants.js";

/**
 * One simulator run recorded for the dashboard's replay (`GET /replay/run?seed=N`): the scenario,
 * the run's events as data (`TraceEvent`, bounded by `REPLAY_EVENTS_MAX`), the checkers' verdict per
 * property, and where the first violation is in the events.
 */

/**
 * Most events a recorded run keeps (about 200 bytes each in JSON, so a few MB): a run of a few
 * hundred ticks has 5,000 to 20,000; a longer one keeps its first `REPLAY_EVENTS_MAX` events, or,
 * when it failed, its last (the run stops at its first violation, so they end there).
 */
export const REPLAY_EVENTS_MAX = 20_000;

/** The properties the checkers watch (docs/simulator.md, "Checkers"), in the order they are shown. */
export const REPLAY_PROPERTIES = [
  "agreement",
  "prefix",
  "validity",
  "at-most-once",
  "unique-ballot-value",
  "fresh-ballot",
  "snapshot",
  "app-state",
  "assertion",
  "crash",
  "durability",
  "liveness",
  "linearizability",
  "lock",
] as const satisfies readonly Violation["property"][];

// Every property the checker knows is listed (a new one fails the build here until it is).
type Unlisted = Exclude<Violation["property"], (typeof REPLAY_PROPERTIES)[number]>;
const everyPropertyListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyPropertyListed;

/**
 * A property's verdict: `pass` (it held through the run, or until the run stopped at another's
 * violation), `fail`, `not checked` (it does not apply: the key-value properties of a run without
 * key-value clients), or `not reached` (checked only at the end, which a run stopped by a violation
 * never reaches: liveness, and linearizability).
 */
export interface PropertyVerdict {
  readonly property: Violation["property"];
  readonly status: "pass" | "fail" | "not checked" | "not reached";
  /** The violation's detail and simulator event number, when it failed. */
  readonly detail?: string;
  readonly event?: number;
}

/** What a replay run is asked for. */
export interface ReplayRequest {
  readonly seed: number;
  /** A name from `REPLAY_VARIANTS`, or null for the correct code. */
  readonly variant: string | null;
  /** Every seed has a stray peer (`paxos sim --stray`); false: the default mix. */
  readonly stray: boolean;
}

/** The JSON of `GET /replay/run`. */
export interface ReplayRun {
  readonly seed: number;
  readonly variant: { readonly name: string; readonly description: string } | null;
  readonly stray: boolean;
  /** The command that replays it line by line (for the correct code). */
  readonly command: string;
  readonly scenario: {
    readonly description: string;
    readonly layout: "separate" | "collapsed";
    readonly targeted: string | null;
    readonly kv: boolean;
    readonly strayPeer: boolean;
  };
  /** The simulated processes, one lane each (their keys: `replica:1`, `client:2`, `stray:1`). */
  readonly processes: readonly string[];
  /** `paxos sim --seed N`'s report of the run. */
  readonly report: string;
  readonly totals: {
    readonly events: number;
    readonly ticks: number;
    readonly decisions: number;
    readonly messagesSent: number;
    readonly messagesDropped: number;
    readonly crashes: number;
    readonly partitions: number;
    readonly traceHash: string;
  };
  readonly verdict: readonly PropertyVerdict[];
  /** The first violation, and the index in `events` of its event (null: the run passed). */
  readonly violation: (Violation & { readonly index: number }) | null;
  /** The run's events, `events[i]` being event number `firstIndex + i` of `eventsTotal`. */
  readonly events: readonly TraceEvent[];
  readonly firstIndex: number;
  readonly eventsTotal: number;
  /** Why events are missing (the run had more than `eventsMax`), or null when none are. */
  readonly truncated: string | null;
  readonly eventsMax: number;
}

/** Keeps the first `max` events and the last `max` (a ring), so either end can be returned. */
class EventRecorder {
  readonly head: TraceEvent[] = [];
  private readonly ring: TraceEvent[] = [];
  total = 0;

  constructor(private readonly max: number) {}

  add(event: TraceEvent): void {
    if (this.head.length < this.max) this.head.push(event);
    this.ring[this.total % this.max] = event;
    this.total++;
  }

  /** The last `max` events, in order. */
  tail(): TraceEvent[] {
    if (this.total <= this.max) return this.head.slice();
    const start = this.total % this.max;
    return [...this.ring.slice(start), ...this.ring.slice(0, start)];
  }
}

/** Runs a seed in this thread and records it (the server runs this in a worker: `replay-worker.ts`). */
export async function recordRun(request: ReplayRequest, eventsMax = REPLAY_EVENTS_MAX): Promise<ReplayRun> {
  const variant = request.variant === null ? null : REPLAY_VARIANTS[request.variant];
  if (variant === undefined) throw new Error(`unknown variant ${request.variant}`);
  const strayOptions: StrayOptions = request.stray ? { stray: true } : {};
  const scenario = scenarioForSeed(request.seed, strayOptions);
  const recorder = new EventRecorder(eventsMax);
  const simulation = new Simulation(scenario, {
    ...(variant !== null ? { bugs: variant.bugs } : {}),
    onEvent: (event) => recorder.add(event),
  });
  const result = await simulation.run();
  const failed = result.violations.length > 0;
  const total = recorder.total;
  const events = total <= eventsMax ? recorder.head : failed ? recorder.tail() : recorder.head;
  const firstIndex = total > eventsMax && failed ? total - eventsMax : 0;
  const first = result.violations[0];
  const index = first === undefined ? -1 : events.findIndex((e) => e.kind === "violation");
  return {
    seed: request.seed,
    variant: variant === null ? null : { name: request.variant as string, description: variant.description },
    stray: request.stray,
    command: `paxos sim --seed ${request.seed}${request.stray ? " --stray" : ""} --trace`,
    scenario: {
      description: describeScenario(scenario),
      layout: scenario.layout,
      targeted: scenario.targeted?.kind ?? null,
      kv: scenario.kv !== null,
      strayPeer: scenario.stray !== null,
    },
    processes: [...simulation.processes.map((p) => p.key), ...(scenario.stray !== null ? ["stray:1"] : [])],
    report: describeRun(result, strayOptions),
    totals: {
      events: result.events,
      ticks: result.ticks,
      decisions: result.decisions,
      messagesSent: result.messagesSent,
      messagesDropped: result.messagesDropped,
      crashes: result.crashes,
      partitions: result.partitions,
      traceHash: result.traceHash,
    },
    verdict: verdictOf(result, scenario.kv !== null),
    violation: first === undefined ? null : { ...first, index },
    events,
    firstIndex,
    eventsTotal: total,
    truncated:
      total <= eventsMax
        ? null
        : failed
          ? `the run has ${total} events: the last ${eventsMax} are kept (the first ${firstIndex} are not)`
          : `the run has ${total} events: the first ${eventsMax} are kept (the last ${total - eventsMax} are not)`,
    eventsMax,
  };
}

/** Each property's verdict in a run (see `PropertyVerdict`). */
export function verdictOf(result: RunResult, kv: boolean): PropertyVerdict[] {
  const stopped = result.violations.length > 0;
  return REPLAY_PROPERTIES.map((property) => {
    const violation = result.violations.find((v) => v.property === property);
    if (violation !== undefined)
      return { property, status: "fail", detail: violation.detail, event: violation.event };
    if ((property === "linearizability" || property === "lock") && !kv)
      return { property, status: "not checked" };
    if (stopped && (property === "liveness" || property === "linearizability"))
      return { property, status: "not reached" };
    return { property, status: "pass" };
  });
}
