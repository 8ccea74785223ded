/**
 * What tests, harnesses and benchmarks share: one `waitFor`, one way to start (and stop) a process.
 * Imports only node:*; nothing in the library imports it.
 */
export { CHROMIUM_PATH, findChromium, launchChromium } from "./browser.js";
export { fuzzParameters } from "./fuzz.js";
export { freePortRange, freeTcpPorts, freeUdpPorts } from "./ports.js";
export {
  childrenOf,
  type Exit,
  isAlive,
  PAXOS_BIN,
  type PaxosStartOptions,
  ProcessGroup,
  runPaxosSync,
  StartedProcess,
  type StartOptions,
  startPaxos,
  startProcess,
} from "./processes.js";
export { WAIT_TIMEOUT_MS, type WaitOptions, waitFor } from "./wait.js";
