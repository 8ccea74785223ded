import type { QuorumSpec } from "../core/index.js";
import { UsageError } from "./errors.js";
import { parsePositiveInt } from "./process-kit.js";

// The quorum options of `paxos cluster` (--weights, --quorum, --phase1-weight, --phase2-weight).

/** `--weights 2,1,1`: one positive integer weight per node, or null without the flag. */
export function parseWeights(text: string | undefined): number[] | null {
  if (text === undefined) return null;
  const weights = text.split(",").map((part) => part.trim());
  for (const weight of weights) {
    if (!/^\d+$/.test(weight) || Number(weight) < 1 || Number(weight) > 1000)
      throw new UsageError(`--weights wants positive integers up to 1000, like 2,1,1; got "${text}"`);
  }
  return weights.map(Number);
}

/** The cluster file's `quorum` from --quorum (default: weighted with --weights, else majority). */
export function quorumOption(
  values: {
    quorum?: string | undefined;
    "phase1-weight"?: string | undefined;
    "phase2-weight"?: string | undefined;
  },
  weighted: boolean,
): QuorumSpec {
  const kind = values.quorum ?? (weighted ? "weighted" : "majority");
  const phaseFlags = values["phase1-weight"] !== undefined || values["phase2-weight"] !== undefined;
  switch (kind) {
    case "majority":
    case "weighted":
      if (phaseFlags) throw new UsageError("--phase1-weight and --phase2-weight are for --quorum flexible");
      if (kind === "majority" && weighted)
        throw new UsageError("--quorum majority counts nodes and ignores --weights: use --quorum weighted");
      return { kind };
    case "flexible": {
      if (values["phase1-weight"] === undefined || values["phase2-weight"] === undefined)
        throw new UsageError("--quorum flexible needs --phase1-weight W1 and --phase2-weight W2");
      return {
        kind,
        phase1Weight: parsePositiveInt(values["phase1-weight"], "--phase1-weight", 1),
        phase2Weight: parsePositiveInt(values["phase2-weight"], "--phase2-weight", 1),
      };
    }
    default:
      throw new UsageError(`--quorum wants majority, weighted or flexible, got "${kind}"`);
  }
}

/** A quorum error of the cluster file, in the flags' words ("quorum: ..." names the file's field). */
export function quorumFlags(error: string): string {
  return error
    .replace(/^quorum: /, "--quorum: ")
    .replace(/phase1Weight/g, "--phase1-weight")
    .replace(/phase2Weight/g, "--phase2-weight");
}

/** What a quorum is, in one line: "majority of nodes", "flexible: phase 1 (prepare) needs ...". */
export function describeQuorum(quorum: QuorumSpec, weights: readonly number[] | null): string {
  const weighting = weights === null ? "" : ` (weights ${weights.join(",")})`;
  if (quorum.kind === "flexible")
    return `flexible: phase 1 (prepare) needs weight ${quorum.phase1Weight}, phase 2 (accept) weight ${quorum.phase2Weight}${weighting}`;
  return `${quorum.kind === "majority" ? "majority of nodes" : "more than half the total weight"}${weighting}`;
}
