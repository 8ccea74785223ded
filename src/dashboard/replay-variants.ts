import type { SimBugs } from "../sim/index.js";

/**
 * The broken variants a replay may run (`?bugs=`), so that a failing run can be shown: the ones the
 * simulator's canaries prove the checkers catch (`sim.test.ts`, docs/simulator.md). `exampleSeed`:
 * a seed each fails at (checked by `replay.test.ts` where given).
 */
export const REPLAY_VARIANTS: Readonly<
  Record<
    string,
    { readonly description: string; readonly bugs: SimBugs; readonly exampleSeed: number | null }
  >
> = {
  "acceptor-ignores-promise": {
    description: "an acceptor that ignores its promise in phase 2",
    bugs: { acceptor: { ignorePromiseInPhase2: true } },
    exampleSeed: 18,
  },
  "quorum-one-smaller": {
    description: "quorums one acceptor smaller than needed",
    bugs: { quorumOneSmaller: true },
    exampleSeed: 2,
  },
  "learner-counts-messages": {
    description: "a learner that counts messages, not acceptors",
    bugs: { learner: { countMessages: true } },
    exampleSeed: 4,
  },
  "proposer-ignores-promised-values": {
    description: "a proposer that ignores the values reported in promises",
    bugs: { proposer: { ignorePromisedValues: true } },
    exampleSeed: 3,
  },
  "ballot-reused-after-restart": {
    description: "a proposer that reuses its ballot after a restart",
    bugs: { proposer: { reuseBallotAfterRestart: true } },
    exampleSeed: 11,
  },
  "snapshot-one-slot-behind": {
    description: "a state machine whose snapshot is one slot behind",
    bugs: { snapshotOneSlotBehind: true },
    exampleSeed: 5,
  },
  "decide-before-install": {
    description: "a state machine that installs a snapshot only after the next decision",
    bugs: { decideBeforeInstall: true },
    exampleSeed: 5,
  },
  "forget-newest-promise": {
    description: "an acceptor that forgets its newest promise on restart",
    bugs: { forgetNewestPromise: true },
    exampleSeed: 250,
  },
  "wal-ignores-lost-segment": {
    description: "a log that does not notice a lost newest segment",
    bugs: { wal: { ignoreLostNewestSegment: true } },
    exampleSeed: 37,
  },
  "rejoin-floor-from-any-leader": {
    description: "a rejoining replica that takes its floor from the first leader it hears",
    bugs: { replica: { rejoinFloorFromAnyLeader: true } },
    exampleSeed: 71,
  },
};
