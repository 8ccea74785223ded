/** The live dashboard of `paxos cluster --dashboard`: its server, and what a node reports to it. */

export type {
  AppReport,
  DecidedSlot,
  LaneKind,
  NodeControl,
  NodeReport,
  NodeState,
  SampledMessage,
} from "./protocol.js";
export { handleReplayRequest } from "./replay.js";
export { laneKind, NodeReporter } from "./reporter.js";
export {
  type ControlAnswer,
  ControlRequest,
  type Dashboard,
  type DashboardOptions,
  type NodeProcessState,
  STATE_INTERVAL_MS,
  startDashboard,
} from "./server.js";
