/** Runners that reproduce external test harnesses, and the attacks of docs/security.md. */
export {
  ATTACK_CLUSTER_KEY,
  ATTACKS,
  type Attack,
  AttackCluster,
  type AttackClusterOptions,
  FORGED,
  type ForgedAckOutcome,
  forgedAck,
  forgedVotes,
} from "./attacks.js";
export { runUsi, type UsiRunOptions, type UsiRunResult } from "./usi.js";
