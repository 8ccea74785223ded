import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { binaryCodec, EnvelopeGuard } from "../codec/index.js";
import { hasLogged, LOG_MESSAGES, logRecords } from "../observe/index.js";
import { clusterIdOfCourse, parseCourseConfig } from "../runtime/index.js";
import { ProcessGroup, type StartedProcess, waitFor } from "../test-support/index.js";

const GROUP = "239.0.0.1";

/** Four consecutive ports in 20000..59999, random per call, for one test's multicast groups. */
function randomBasePort(): number {
  return 20_000 + Math.floor(Math.random() * (40_000 - 4));
}

function courseConfig(base: number, extra = ""): string {
  return (
    `# test config\nclients ${GROUP} ${base}\nproposers ${GROUP} ${base + 1}\n` +
    `acceptors ${GROUP} ${base + 2}\nlearners ${GROUP} ${base + 3}\n${extra}`
  );
}

function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "paxos-roles-test-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const started = (proc: StartedProcess) => () => hasLogged(proc.stderr, LOG_MESSAGES.started);

/** The lines a process printed on stdout. */
function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** The stats in a process's "stopping" log line (how the driver counted its frames). */
function stoppingStats(stderr: string): Record<string, number> | null {
  const stopping = logRecords(stderr, LOG_MESSAGES.stopping)[0];
  return (stopping?.stats as Record<string, number> | undefined) ?? null;
}

/** Starts 3 acceptors, a proposer and a learner, and waits until each has said it started. */
async function startDeployment(
  processes: ProcessGroup,
  configPath: string,
  flags: Record<string, string[]> = {},
) {
  const acceptors = [1, 2, 3].map((id) =>
    processes.start(`acceptor ${id}`, ["acceptor", String(id), configPath, ...(flags.acceptor ?? ["--new"])]),
  );
  const proposer = processes.start("proposer 1", ["proposer", "1", configPath, ...(flags.proposer ?? [])]);
  const learner = processes.start("learner 1", ["learner", "1", configPath, ...(flags.learner ?? [])]);
  for (const proc of [...acceptors, proposer, learner]) await waitFor(started(proc), `${proc.name} to start`);
  return { acceptors, proposer, learner };
}

describe("paxos acceptor|proposer|learner|client over loopback multicast", () => {
  test("a client's 50 stdin lines are printed by the learner, each exactly once; the client exits 0", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const configPath = join(temp.dir, "paxos.conf");
      writeFileSync(configPath, courseConfig(randomBasePort()));
      const { learner } = await startDeployment(processes, configPath);

      const values = Array.from({ length: 50 }, (_, i) => `value ${i + 1} ${"x".repeat(i)}`);
      const client = processes.start("client 1", ["client", "1", configPath], { stdin: true });
      client.child.stdin?.end(`${values.join("\n")}\n`);
      const clientExit = await Promise.race([
        client.exited,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`client did not exit: ${client.stderr}`)), 20_000).unref(),
        ),
      ]);
      assert.deepEqual(clientExit, { code: 0, signal: null }, client.stderr);
      await waitFor(() => lines(learner.stdout).length >= 50, "the learner to print 50 lines");

      const learnerExit = await processes.stop(learner);
      assert.equal(learnerExit.code, 0, learner.stderr);
      const printed = lines(learner.stdout);
      assert.equal(printed.length, 50, `the learner printed ${printed.length} lines`);
      assert.equal(new Set(printed).size, 50, "a value was printed twice");
      assert.deepEqual([...printed].sort(), [...values].sort());
      assert.equal(stoppingStats(learner.stderr)?.decodeErrors, 0);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("--debug prints one line per message sent and received on stderr", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const configPath = join(temp.dir, "paxos.conf");
      const base = randomBasePort();
      writeFileSync(configPath, courseConfig(base));
      const { proposer, learner, acceptors } = await startDeployment(processes, configPath, {
        proposer: ["--debug"],
        learner: ["--debug"],
      });
      const client = processes.start("client 7", ["client", "7", configPath, "--debug"], { stdin: true });
      client.child.stdin?.end("hello\n");
      await waitFor(() => learner.stdout.includes("hello\n"), "the learner to print hello");
      const clientExit = await client.exited;
      assert.equal(clientExit.code, 0, client.stderr);

      // The proposer sends prepares to the acceptors' group and hears promises (debug lines:
      // time, who, direction, peer address, kind, fields; src/observe/debug-line.ts).
      const time = String.raw`\d\d:\d\d:\d\d\.\d{3}`;
      assert.match(
        proposer.stderr,
        new RegExp(String.raw`^${time} proposer 1 -> ${GROUP}:${base + 2} prepare ballot=\d+\.1 `, "m"),
      );
      assert.match(
        proposer.stderr,
        new RegExp(String.raw`^${time} proposer 1 <- 127\.0\.0\.1:\d+ promise ballot=\d+\.1 `, "m"),
      );
      assert.match(
        proposer.stderr,
        new RegExp(String.raw`^${time} proposer 1 <- 127\.0\.0\.1:\d+ request from=7 commands=1 `, "m"),
      );
      assert.match(
        learner.stderr,
        new RegExp(String.raw`^${time} learner 1 <- 127\.0\.0\.1:\d+ accept(ed)? ballot=`, "m"),
      );
      assert.match(
        client.stderr,
        new RegExp(`^${time} client 7 -> ${GROUP}:${base + 1} request from=7 `, "m"),
      );
      // Without --debug, no trace lines.
      for (const acceptor of acceptors) assert.doesNotMatch(acceptor.stderr, /acceptor \d (->|<-) /m);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("a bad config line is a one-line error naming the line, exit status 2, for every role", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const base = randomBasePort();
      const cases = [
        {
          text: courseConfig(base).replace(`acceptors ${GROUP} ${base + 2}`, `acceptors ${GROUP} 99999`),
          line: 4,
        },
        { text: courseConfig(base).replace(`learners ${GROUP}`, "learners 239.0.0"), line: 5 },
        { text: courseConfig(base).replace(`proposers ${GROUP} ${base + 1}`, "proposers"), line: 3 },
      ];
      const runs = [];
      for (const [index, { text, line }] of cases.entries()) {
        const configPath = join(temp.dir, `bad-${index}.conf`);
        writeFileSync(configPath, text);
        // Every role with the first bad file; one role each with the others.
        const roles =
          index === 0
            ? ["acceptor", "proposer", "learner", "client"]
            : [["learner", "client"][index - 1] as string];
        for (const role of roles) {
          runs.push(
            processes
              .run(`${role} bad ${index}`, [role, "1", configPath])
              .then((run) => ({ run, role, line, configPath })),
          );
        }
      }
      for (const { run, role, line, configPath } of await Promise.all(runs)) {
        assert.equal(run.code, 2, `${role} with ${configPath}: ${run.stderr}`);
        const errorLines = lines(run.stderr);
        assert.equal(errorLines.length, 1, `one line expected from ${role}:\n${run.stderr}`);
        assert.match(errorLines[0] ?? "", new RegExp(`^paxos ${role}: .*line ${line}\\b`), run.stderr);
        assert.ok(errorLines[0]?.includes(configPath), `the error names the file: ${run.stderr}`);
        assert.equal(run.stdout, "");
      }
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("a missing group is a one-line error naming the group; a missing file names the file", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const configPath = join(temp.dir, "no-learners.conf");
      writeFileSync(configPath, courseConfig(randomBasePort()).replace(/^learners .*$/m, ""));
      const missingGroup = await processes.run("acceptor", ["acceptor", "1", configPath]);
      assert.equal(missingGroup.code, 2);
      assert.equal(lines(missingGroup.stderr).length, 1, missingGroup.stderr);
      assert.match(missingGroup.stderr, /"learners"/);
      const nowhere = join(temp.dir, "nowhere.conf");
      const missingFile = await processes.run("learner", ["learner", "1", nowhere]);
      assert.equal(missingFile.code, 2);
      assert.equal(lines(missingFile.stderr).length, 1, missingFile.stderr);
      assert.ok(missingFile.stderr.includes(nowhere), missingFile.stderr);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("an acceptor id outside 1..N is a one-line error, exit status 2", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const configPath = join(temp.dir, "paxos.conf");
      writeFileSync(configPath, courseConfig(randomBasePort()));
      const run = await processes.run("acceptor 4", ["acceptor", "4", configPath]);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(lines(run.stderr).length, 1, run.stderr);
      assert.match(run.stderr, /acceptor id 4 is not one of 1\.\.3/);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("an unknown group line is a warning on stderr naming the line, and the processes run", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const configPath = join(temp.dir, "paxos.conf");
      const base = randomBasePort();
      writeFileSync(configPath, courseConfig(base, `replicas ${GROUP} ${base + 4}\n`));
      const { learner, acceptors, proposer } = await startDeployment(processes, configPath);
      for (const proc of [learner, proposer, ...acceptors]) {
        assert.match(
          proc.stderr,
          /^paxos \w+: .*paxos\.conf: line 6: unknown group "replicas"/m,
          proc.stderr,
        );
      }
      const client = processes.start("client 1", ["client", "1", configPath], { stdin: true });
      client.child.stdin?.end("still works\n");
      await waitFor(() => learner.stdout === "still works\n", "the learner to print the value");
      assert.equal((await client.exited).code, 0, client.stderr);
      assert.match(client.stderr, /line 6: unknown group "replicas"/);
      assert.equal((await processes.stop(learner)).code, 0);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("a learner survives malformed datagrams sent to the learners group, and still learns", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    const socket = createSocket("udp4");
    try {
      const configPath = join(temp.dir, "paxos.conf");
      const base = randomBasePort();
      writeFileSync(configPath, courseConfig(base));
      const { learner } = await startDeployment(processes, configPath);

      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
      socket.setMulticastInterface("127.0.0.1");
      socket.setMulticastLoopback(true);
      const garbage: Buffer[] = [
        Buffer.alloc(0),
        Buffer.from([0xa1]),
        Buffer.from([0xa1, 0xff, 0, 0]),
        Buffer.from("not a paxos message"),
        Buffer.from('{"type":"decide","from":1,"entries":[{"slot":1}]}'),
        Buffer.alloc(1400, 0xa1),
      ];
      for (let i = 0; i < 20; i++) {
        garbage.push(Buffer.from(Array.from({ length: 64 }, () => Math.floor(Math.random() * 256))));
      }
      // A real decide frame, cut short, and the same frame with a byte too many.
      const decide = binaryCodec.encode({
        type: "decide",
        from: 1,
        entries: [{ slot: 1, value: { commands: [{ client: 66, seq: 1, payload: "forged" }] } }],
      });
      garbage.push(Buffer.from(decide.subarray(0, decide.length - 4)), Buffer.concat([decide, Buffer.of(0)]));
      // Each bare (refused as not an envelope) and in a well-formed envelope (refused by the decoder).
      const course = parseCourseConfig(courseConfig(base));
      assert.ok(course.ok);
      const envelope = new EnvelopeGuard({
        clusterId: clusterIdOfCourse(course.value),
        self: { kind: "proposer", id: 1 },
        roles: [],
        incarnation: Date.now(),
      });
      for (const frame of [...garbage, ...garbage.map((bare) => envelope.seal(bare, { role: "learner" }))]) {
        await new Promise<void>((resolve, reject) =>
          socket.send(frame, base + 3, GROUP, (error) => (error ? reject(error) : resolve())),
        );
      }
      const client = processes.start("client 2", ["client", "2", configPath], { stdin: true });
      client.child.stdin?.end("after garbage\n");
      await waitFor(() => learner.stdout === "after garbage\n", "the learner to print the value");
      assert.equal((await client.exited).code, 0, client.stderr);
      assert.equal(learner.done(), false, `the learner died: ${learner.stderr}`);
      const exit = await processes.stop(learner);
      assert.equal(exit.code, 0, learner.stderr);
      const stats = stoppingStats(learner.stderr);
      assert.ok(stats !== null, learner.stderr);
      // Datagrams on a loopback group are not lost, but allow for it: most must have been seen as bad.
      assert.ok((stats.decodeErrors ?? 0) >= garbage.length - 2, `decodeErrors ${stats.decodeErrors}`);
      assert.ok((stats.framesRefused ?? 0) >= garbage.length - 2, `framesRefused ${stats.framesRefused}`);
      assert.doesNotMatch(learner.stderr, /FATAL|Error:/);
    } finally {
      socket.close();
      await processes.stopAll();
      temp.remove();
    }
  });
});
