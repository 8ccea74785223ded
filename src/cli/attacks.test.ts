/**
 * Every attack of issue 9 against a running 3-node UDP cluster (docs/security.md, "Evidence: attacks
 * against running nodes"). Not part of the default test run: `PAXOS_ATTACKS=1 node scripts/test.js`
 * (or `node --test dist/cli/attacks.suite.js`) runs it. `PAXOS_ATTACKS_AUTH=1` adds the keyed runs
 * of the two forged-vote attacks (they need the cluster key of `PAXOS_CLUSTER_KEY`).
 */
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import {
  ATTACK_CLUSTER_KEY,
  ATTACKS,
  AttackCluster,
  type AttackClusterOptions,
  FORGED,
  forgedAck,
  forgedVotes,
} from "../harness/index.js";
import { waitFor } from "../test-support/index.js";

async function withCluster(
  t: TestContext,
  options: AttackClusterOptions,
  run: (cluster: AttackCluster) => Promise<void>,
) {
  const cluster = await AttackCluster.start(options);
  try {
    await run(cluster);
  } finally {
    // What each node refused, by reason: the names to hold the checks to.
    t.diagnostic(`refused: ${cluster.refusalsSinceStart()}`);
    await cluster.stop();
  }
}

describe("attacks against a running 3-node UDP cluster, unauthenticated (issue 9)", () => {
  for (const attack of ATTACKS) {
    test(attack.name, async (t) => {
      await withCluster(t, attack.cluster !== undefined ? { cluster: attack.cluster } : {}, attack.run);
    });
  }

  test("two accepted claiming member ids, without a key: the outcome is documented (validation cannot refuse them)", async (t) => {
    await withCluster(t, {}, async (cluster) => {
      const { target } = await forgedVotes(cluster);
      const printedForged = cluster.printed(target).some((line) => line.includes(FORGED));
      const exited = cluster.ids.filter((id) => cluster.proc(id).done());
      t.diagnostic(
        `node ${target} ${printedForged ? "delivered" : "did not deliver"} the forged value; exited: [${exited.join(", ")}]\n${cluster.describe()}`,
      );
      // The frames reached the node (settle saw them counted); nothing else can be promised here.
      assert.ok(cluster.stats(target) !== null);
    });
  });

  test("a forged ack to a client's port, without a key: the outcome is documented (validation cannot refuse it)", async (t) => {
    await withCluster(t, {}, async (cluster) => {
      const outcome = await forgedAck(cluster);
      t.diagnostic(
        `the client ${outcome.ackReceived ? "took the forged ack in" : "never took the forged ack in"}; it ${
          outcome.exitedUndecided ? "exited counting its undecided value decided" : "kept waiting"
        }`,
      );
      assert.ok(outcome.ackReceived, `the forged ack never reached the client:\n${outcome.client.stderr}`);
    });
  });
});

// The keyed half: with a cluster key, the forged votes and acks that validation cannot refuse are.
{
  describe("forged votes against a running 3-node UDP cluster with a cluster key (issue 9)", () => {
    test("two accepted claiming member ids are refused with a key", async (t) => {
      await withCluster(t, { key: ATTACK_CLUSTER_KEY }, async (cluster) => {
        const { target, before } = await forgedVotes(cluster);
        cluster.assertNoExit();
        cluster.assertNothingForged();
        cluster.assertStateUnchanged(before);
        await cluster.assertFrameRefusalCounted(before, [target], "unauthenticated");
        await cluster.checkHealthy("forged votes with a key");
      });
    });

    test("a forged ack to a client's port is refused with a key", async (t) => {
      await withCluster(t, { key: ATTACK_CLUSTER_KEY }, async (cluster) => {
        const outcome = await forgedAck(cluster);
        assert.equal(
          outcome.exitedUndecided,
          false,
          `the client believed a forged ack:\n${outcome.client.stderr}`,
        );
        // The nodes are back: the value is decided for real, and the client then exits 0.
        await waitFor(
          () => cluster.ids.every((id) => cluster.printed(id).includes(outcome.payload)),
          "every node to print the client's value",
          { detail: () => cluster.describe() },
        );
        const exit = await outcome.client.finish(15_000);
        assert.deepEqual(exit, { code: 0, signal: null }, outcome.client.stderr);
        await cluster.checkHealthy("forged ack with a key");
      });
    });
  });
}
