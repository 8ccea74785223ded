/**
 * The crash test's verdict, as a pure function of what it collected: every incarnation's stdout,
 * the values the client submitted and those it saw acked. No processes, no I/O, so each check has
 * unit tests of its own (crash-check.test.ts).
 */

/** From stdout line `fromLine` on, line i of an incarnation is position `at + i - fromLine` of the agreed sequence. */
export interface OutputRun {
  readonly fromLine: number;
  readonly at: number;
}

/** What one process lifetime of one node printed, and where its pieces sit. */
export interface IncarnationOutput {
  /** 1-based node id. */
  readonly node: number;
  /** 1-based: the first start is 1. */
  readonly number: number;
  /** Complete stdout lines, in order: one decided value each. */
  readonly lines: readonly string[];
  /**
   * Where each run of lines sits: the first run starts at the command count of the snapshot the
   * incarnation restored (0 without one); each snapshot installed from a peer starts a new run at
   * that snapshot's count, from the line count stdout had reached (a gap this incarnation never prints).
   */
  readonly runs: readonly OutputRun[];
  /** A last line cut short by a kill (no newline), or null. */
  readonly tornTail: string | null;
}

export interface CrashOutputs {
  /** Per node (index 0 is node 1), its incarnations in order; the last is the one that ran to the end. */
  readonly nodes: readonly (readonly IncarnationOutput[])[];
  /** Every value the client submitted. */
  readonly submitted: ReadonlySet<string>;
  /** The values the client saw acked. */
  readonly acked: ReadonlySet<string>;
  /** Values in flight (submitted, unacked) at some kill: counted as recovered if decided. */
  readonly inFlightAtKills?: ReadonlySet<string>;
}

export interface CrashVerdict {
  readonly ok: boolean;
  /** The agreed sequence, put together from every incarnation's pieces. */
  readonly agreed: readonly string[];
  /** Acked values missing from the sequence, or past where some node's state ends. */
  readonly lost: number;
  /** Values printed twice by one incarnation, or decided at two positions. */
  readonly duplicates: number;
  /** Positions where two pieces disagree, positions nobody printed, torn last lines that do not fit, nodes ending elsewhere. */
  readonly decidedChanged: number;
  /** Printed values the client never submitted. */
  readonly unknown: number;
  /** Values in flight at a kill that were decided after all. */
  readonly recovered: number;
  /** One line per problem (the first ten of each kind, then a count); empty when `ok`. */
  readonly problems: readonly string[];
}

/** Problems of one kind listed one by one; past this many, only counted. */
const LISTED_PER_KIND = 10;

/** The position in the agreed sequence of stdout line `line` of an incarnation with these runs. */
export function positionOf(runs: readonly OutputRun[], line: number): number {
  let run = runs[0] ?? { fromLine: 0, at: 0 };
  for (const next of runs) if (next.fromLine <= line) run = next;
  return run.at + line - run.fromLine;
}

/** How far an incarnation's state reaches: the position after its last line (or its last install). */
export function endOf(output: Pick<IncarnationOutput, "lines" | "runs">): number {
  const last = output.runs[output.runs.length - 1] ?? { fromLine: 0, at: 0 };
  return last.at + output.lines.length - last.fromLine;
}

/**
 * Checks a crash run's outputs:
 *
 * - the agreed sequence is put together from every incarnation's pieces (each placed by its runs);
 *   two pieces that disagree on a position, or a position nobody printed, count as a changed decision;
 * - a torn last line must be the beginning of the value at the position it would have had;
 * - no incarnation prints a value twice, no value sits at two positions, and every printed value
 *   was submitted;
 * - every node's last incarnation ends where the agreed sequence ends;
 * - every acked value is in the sequence, below where every node ends (lost otherwise);
 * - something was acked at all.
 *
 * @example
 * const verdict = checkCrashOutputs({ nodes, submitted, acked });
 * if (!verdict.ok) console.error(verdict.problems.join("\n"));
 */
export function checkCrashOutputs(outputs: CrashOutputs): CrashVerdict {
  const problems: string[] = [];
  const listed = new Map<string, number>();
  /** Counts a problem of `kind`; lists it while fewer than `LISTED_PER_KIND` of its kind are. */
  const report = (kind: string, line: () => string) => {
    const count = (listed.get(kind) ?? 0) + 1;
    listed.set(kind, count);
    if (count <= LISTED_PER_KIND) problems.push(line());
  };
  const where = (i: IncarnationOutput) => `node ${i.node} incarnation ${i.number}`;
  const all = outputs.nodes.flat();

  // The agreed sequence: the first piece to reach a position sets it; any other must agree.
  const agreed: string[] = [];
  let decidedChanged = 0;
  for (const incarnation of all) {
    incarnation.lines.forEach((value, line) => {
      const at = positionOf(incarnation.runs, line);
      const known = agreed[at];
      if (known === undefined) agreed[at] = value;
      else if (known !== value) {
        decidedChanged++;
        report(
          "changed",
          () => `${where(incarnation)}: position ${at + 1} is "${value}", elsewhere "${known}"`,
        );
      }
    });
  }
  const holes: number[] = [];
  for (let at = 0; at < agreed.length; at++) if (agreed[at] === undefined) holes.push(at);
  if (holes.length > 0) {
    decidedChanged += holes.length;
    const first = holes.slice(0, 5).map((at) => at + 1);
    problems.push(`no incarnation printed position(s) ${first.join(", ")}${holes.length > 5 ? ", ..." : ""}`);
  }

  let duplicates = 0;
  let unknown = 0;
  for (const incarnation of all) {
    const tail = incarnation.tornTail;
    if (tail !== null) {
      const expected = agreed[endOf(incarnation)];
      if (expected === undefined || !expected.startsWith(tail)) {
        decidedChanged++;
        report(
          "torn",
          () => `${where(incarnation)}: its last, cut-short line "${tail}" does not begin "${expected}"`,
        );
      }
    }
    const seen = new Set<string>();
    for (const value of incarnation.lines) {
      if (seen.has(value)) {
        duplicates++;
        report("twice", () => `${where(incarnation)}: printed "${value}" twice`);
      }
      seen.add(value);
      if (!outputs.submitted.has(value)) {
        unknown++;
        report("unknown", () => `${where(incarnation)}: printed "${value}", which was never submitted`);
      }
    }
  }
  // Each value at most once in the whole sequence (a value decided twice would sit in two places).
  const positions = new Map<string, number>();
  agreed.forEach((value, at) => {
    const before = positions.get(value);
    if (before !== undefined) {
      duplicates++;
      report("two positions", () => `"${value}" decided at positions ${before + 1} and ${at + 1}`);
    } else positions.set(value, at);
  });

  const ends = outputs.nodes.map((list) => {
    const last = list[list.length - 1];
    return last === undefined ? 0 : endOf(last);
  });
  ends.forEach((end, i) => {
    if (end !== agreed.length) {
      decidedChanged++;
      problems.push(
        `node ${i + 1} ends with ${end} values applied, the agreed sequence has ${agreed.length}`,
      );
    }
  });

  let lost = 0;
  for (const value of outputs.acked) {
    const at = positions.get(value);
    const missingAt = ends.flatMap((end, i) => (at !== undefined && at < end ? [] : [i + 1]));
    if (missingAt.length > 0) {
      lost++;
      report("lost", () => `acked value "${value}" is missing from node(s) ${missingAt.join(", ")}`);
    }
  }
  if (outputs.acked.size === 0) problems.push("nothing was acked");
  for (const [kind, count] of listed) {
    if (count > LISTED_PER_KIND) problems.push(`... ${count} problems of the kind "${kind}" in all`);
  }

  let recovered = 0;
  for (const value of outputs.inFlightAtKills ?? []) if (positions.has(value)) recovered++;
  return {
    ok: problems.length === 0,
    agreed,
    lost,
    duplicates,
    decidedChanged,
    unknown,
    recovered,
    problems,
  };
}
