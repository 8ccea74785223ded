/**
 * `paxos`: Paxos consensus for Node.js. The package root exports the pure protocol core; the
 * simulator lives at `paxos/sim`.
 */
export * from "./core/index.js";
