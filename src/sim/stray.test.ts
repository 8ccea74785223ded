import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { binaryCodec, jsonCodec } from "../codec/index.js";
import { Acceptor, createQuorumSystem, Learner, Prng, ZERO_BALLOT } from "../core/index.js";
import { runSeed } from "./run.js";
import { scenarioForSeed } from "./scenario.js";
import { Simulation } from "./simulation.js";
import { REFUSABLE_ATTACKS, STRAY_ATTACKS, StrayPeer, type StraySettings, type StrayView } from "./stray.js";

describe("the stray peer (issue 9, section 4)", () => {
  test("it is drawn last: a seed's other fields are the same with and without it", () => {
    for (const seed of [1, 2, 5, 85, 105]) {
      const plain = scenarioForSeed(seed);
      const withStray = scenarioForSeed(seed, { stray: true });
      assert.equal(plain.stray, null, `seed ${seed}: the default mix has no stray peer yet`);
      assert.notEqual(withStray.stray, null);
      assert.deepEqual({ ...withStray, stray: null }, plain, `seed ${seed}`);
      assert.deepEqual(scenarioForSeed(seed, { stray: false }), plain);
    }
  });

  test("forged frames need a cluster key: without one the scenario is refused", () => {
    assert.throws(() => scenarioForSeed(1, { stray: true, forged: true }), /need a cluster key/);
    assert.throws(
      () => scenarioForSeed(1, { stray: true, attacks: ["forged-vote"] }),
      /forged attacks need the forged option/,
    );
    const keyed = scenarioForSeed(1, { stray: true, forged: true, clusterKey: "k" });
    assert.ok(keyed.stray?.forged);
    assert.ok(keyed.stray?.attacks.includes("forged-vote"));
    // A keyed scenario runs keyed: every driver has the key, the stray peer never does.
    assert.doesNotThrow(() => new Simulation(keyed));
  });

  test("every frame but garbage is a valid encoding, in both codecs, even when rounds seen are near 2^53", () => {
    for (const codec of [binaryCodec, jsonCodec]) {
      const settings: StraySettings = {
        startTick: 0,
        endTick: 1000,
        livenessTicks: 0,
        framesPerTick: 8,
        floodEveryTicks: 5,
        floodPrepares: 10,
        attacks: STRAY_ATTACKS,
        forged: true,
      };
      const peer = new StrayPeer(settings, new Prng(7), codec);
      const ids = { proposer: [1, 2, 3], acceptor: [1, 2, 3], learner: [1, 2, 3] };
      for (let tick = 0; tick < 200; tick++) {
        const highestRound = tick < 100 ? tick : Number.MAX_SAFE_INTEGER - (tick % 3);
        const view: StrayView = {
          tick,
          ids,
          membersKnown: tick % 2 === 0,
          spareAcceptors: ids.acceptor,
          highestRound,
          leaderBallot: tick % 4 === 0 ? ZERO_BALLOT : { round: highestRound, node: 2 },
          decidedThrough: tick,
          healed: false,
        };
        for (const frame of peer.framesFor(view)) {
          const decoded = codec.decode(frame.frame);
          if (frame.attack === "garbage") assert.ok(!decoded.ok, `${codec.name}: garbage decoded`);
          else
            assert.ok(
              decoded.ok,
              `${codec.name} ${frame.attack} ${frame.summary}: ${decoded.ok ? "" : decoded.error}`,
            );
        }
      }
      assert.deepEqual(
        [...peer.sent.keys()].sort(),
        [...STRAY_ATTACKS].sort(),
        `${codec.name}: every attack sent`,
      );
    }
  });

  test("its frames reach the real drivers through the network, and frames that do not decode are counted there", async () => {
    // Seed 2 is a collapsed seed; the stray peer sends only undecodable frames (cut short, junk).
    const scenario = scenarioForSeed(2, { stray: true, attacks: ["garbage"] });
    const sim = new Simulation(scenario);
    const result = await sim.run();
    const stray = result.stray;
    assert.ok(stray !== null);
    assert.ok(stray.framesSent > 0);
    assert.equal(stray.sent.garbage, stray.framesSent);
    assert.ok(stray.framesDelivered > 0, "copies reached a listening process");
    // Every copy that reached a process went through its driver's decoder and was refused there.
    assert.equal(stray.decodeErrors, stray.framesDelivered);
    assert.deepEqual(result.violations, []);
  });

  test("every refusable attack sends frames, and a run with all of them replays: same trace hash twice", async () => {
    const options = { stray: { stray: true, attacks: REFUSABLE_ATTACKS } } as const;
    for (const seed of [1, 2, 6]) {
      const first = await runSeed(seed, options);
      const second = await runSeed(seed, options);
      assert.equal(first.traceHash, second.traceHash, `seed ${seed}`);
      assert.equal(first.events, second.events, `seed ${seed}`);
      assert.deepEqual(first.stray, second.stray, `seed ${seed}`);
      assert.ok((first.stray?.framesSent ?? 0) > 0, `seed ${seed}: the stray peer sent frames`);
      const plain = await runSeed(seed);
      assert.notEqual(first.traceHash, plain.traceHash, `seed ${seed}: the stray peer changes the run`);
    }
    // Over a few seeds every kind of frame goes out.
    const sent = new Set<string>();
    for (const seed of [1, 2, 3, 4, 6]) {
      const result = await runSeed(seed, options);
      for (const attack of Object.keys(result.stray?.sent ?? {})) sent.add(attack);
      if (sent.size === REFUSABLE_ATTACKS.length) break;
    }
    assert.deepEqual([...sent].sort(), [...REFUSABLE_ATTACKS].sort());
  });

  test("an exception a process stops on is a 'crash' violation of the seed, not the end of the simulator", async () => {
    // Seed 1 runs collapsed replicas; their application throws a TypeError at its first decision.
    const result = await runSeed(1, { bugs: { applyThrows: true } });
    const first = result.violations[0];
    assert.equal(first?.property, "crash");
    assert.match(
      first?.detail ?? "",
      /^replica:\d+ stopped on TypeError: deliberate: the application threw at slot 1$/,
    );
  });

  test("the roles' refusals are summed into the run's report", async (t) => {
    // The roles gain `refusals` (core/refusals.ts) in the validation changes of issue 9; until then
    // a role has none and the report's refusals stay empty.
    const quorum = createQuorumSystem([{ id: 1 }], { kind: "majority" });
    assert.ok(quorum.ok);
    const rolesCount =
      "refusals" in new Acceptor({ id: 1 }) && "refusals" in new Learner({ id: 1, quorum: quorum.value });
    const result = await runSeed(1, { stray: { stray: true, attacks: REFUSABLE_ATTACKS } });
    const total = Object.values(result.stray?.refusals ?? {}).reduce((a, b) => a + b, 0);
    if (rolesCount) {
      assert.ok(total > 0, "the stray peer's frames were refused and counted by reason");
    } else {
      t.diagnostic("the roles keep no Refusals on this branch: the report's refusals are empty");
      assert.equal(total, 0);
    }
  });
});
