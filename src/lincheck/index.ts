/**
 * A linearizability checker for histories of a register or a key-value store (see `check.ts`), for
 * the simulator's clients and for `paxos lincheck`.
 */
export {
  type Budget,
  type CheckResult,
  checkHistory,
  DEFAULT_BUDGET,
  type Failure,
  type KeyResult,
  type Verdict,
} from "./check.js";
export {
  type CallRecord,
  HISTORY_LIMITS,
  type Operation,
  type Outcome,
  operationsOf,
  type ParseResult,
  parseHistory,
} from "./history.js";
export { kvModel, MODELS, type Model, modelProblem, registerModel, sameValue } from "./models.js";
