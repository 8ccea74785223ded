import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runUsi, type UsiRunOptions } from "./usi.js";

// The course harness's runs, reproduced against compat/usi/*.sh: 3 acceptors, 2 proposers,
// 2 learners, 2 clients, started group by group about 1 s apart, stopped 5 s after the clients.
const scriptsDir = fileURLToPath(new URL("../../compat/usi/", import.meta.url));
const VALUES_PER_CLIENT = 300;

const scenarios: [string, Partial<UsiRunOptions>][] = [
  ["1. the normal run", {}],
  ["2. learner 2 starts 1 s after client 1 and still prints the whole sequence", { lateLearner: true }],
  ["3. only 2 of the 3 acceptors run: every value is learned", { acceptors: [1, 2] }],
  ["4. only 1 of the 3 acceptors runs: nothing is learned, no crash, no spin", { acceptors: [1] }],
  ["5. 10% of all datagrams are dropped: every value is learned", { dropRate: 0.1 }],
  ["6a. the leading proposer is killed with SIGKILL mid-run", { kill: { role: "proposer", id: "leader" } }],
  ["6b. the other proposer is killed with SIGKILL mid-run", { kill: { role: "proposer", id: "follower" } }],
  ["7. one acceptor is killed mid-run", { kill: { role: "acceptor", id: 2 } }],
  ["8. one acceptor is killed and restarted mid-run", { kill: { role: "acceptor", id: 3, restart: true } }],
];

describe("course harness runs (compat/usi)", () => {
  for (const [name, options] of scenarios) {
    test(name, async (t) => {
      // Values trickle in over 3 s, so kills and late starts happen while values are in flight.
      const result = await runUsi({
        scriptsDir,
        valuesPerClient: VALUES_PER_CLIENT,
        feedSeconds: 3,
        ...options,
      });
      assert.deepEqual(result.problems, [], `work dir ${result.workDir}`);
      if ((options.acceptors?.length ?? 3) >= 2) {
        assert.equal(result.learned.length, 2);
        for (const lines of result.learned) assert.equal(new Set(lines).size, result.sent.length);
        t.diagnostic(
          `both learners printed all ${result.sent.length} values, ${result.learnedAllMs} ms after client 1 started` +
            (result.killed ? `; killed ${result.killed}` : ""),
        );
      } else {
        for (const lines of result.learned) assert.equal(lines.length, 0);
        // No spinning: a process that waits for a quorum that never comes uses little CPU.
        for (const p of result.processes) {
          assert.ok(p.cpuSeconds < 2, `${p.name} used ${p.cpuSeconds} s of CPU in a ~9 s run`);
        }
        t.diagnostic(
          `nothing learned; CPU seconds: ${result.processes.map((p) => `${p.name} ${p.cpuSeconds}`).join(", ")}`,
        );
      }
    });
  }
});
