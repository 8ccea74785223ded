import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { LOG_MESSAGES, logRecords } from "../observe/index.js";
import { freeUdpPorts, ProcessGroup, runPaxosSync, waitFor } from "../test-support/index.js";
import { reportError } from "./main.js";

function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "paxos-usage-test-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `paxos args`; asserts exit status `status` and exactly one line on stderr, and returns it. */
function oneLine(status: number, ...args: string[]): string {
  const run = runPaxosSync(args);
  const where = `paxos ${args.join(" ")}: ${run.stderr}`;
  assert.equal(run.status, status, where);
  assert.equal(run.stderr.split("\n").filter((line) => line !== "").length, 1, where);
  assert.doesNotMatch(run.stderr, /^\s+at /m, where);
  return run.stderr.trimEnd();
}

/** A cluster file of `nodes`. */
function clusterFile(dir: string, nodes: readonly { id: number; host: string; port: number }[]): string {
  const path = join(dir, "cluster.json");
  writeFileSync(path, JSON.stringify({ nodes }));
  return path;
}

describe("the command line as a new user meets it", () => {
  test("Node's own option-parser text never shows: the option is named, with the nearest one and --help (exit 2)", () => {
    const cases: [string[], string][] = [
      [
        ["cluster", "--baseport", "3"],
        'paxos cluster: unknown option --baseport (did you mean --base-port?); see "paxos cluster --help"',
      ],
      [["cluster", "--nodes", "-3"], 'paxos cluster: --nodes wants a positive integer, got "-3"'],
      [["cluster", "--nodes", "3", "--nodes", "4"], "paxos cluster: --nodes given twice; give it once"],
      [["cluster", "--demo=1"], 'paxos cluster: --demo takes no value (got "1")'],
      [
        ["sim", "--sed", "3"],
        'paxos sim: unknown option --sed (did you mean --seed?); see "paxos sim --help"',
      ],
      [["node", "--config"], 'paxos node: --config needs a value; see "paxos node --help"'],
      [
        ["kv", "get", "k", "--nod", "127.0.0.1:1"],
        'paxos kv: unknown option --nod (did you mean --node?); see "paxos kv --help"',
      ],
      [["lock", "acquire", "x", "--hold", "--hold"], "paxos lock: --hold given twice; give it once"],
      [
        ["acceptor", "1", "x.conf", "--interfce", "1.2.3.4"],
        'paxos acceptor: unknown option --interfce (did you mean --interface?); see "paxos acceptor --help"',
      ],
      [
        ["demo", "--seconds", "x"],
        'paxos demo: --seconds wants a number of seconds above 0, at most 600; got "x"',
      ],
      [["demo", "--seed", "-1"], 'paxos demo: --seed wants a non-negative integer, got "-1"'],
      [
        ["cluster", "--data="],
        "paxos cluster: --data needs a directory (an empty path would be the working directory)",
      ],
      [
        ["cluster", "--separate-roles", "--data", ""],
        "paxos cluster: --data needs a directory (an empty path would be the working directory)",
      ],
      [
        ["sim", "--seed", "99999999999999999999"],
        'paxos sim: --seed wants a non-negative integer, got "99999999999999999999"',
      ],
      [["clustr"], 'paxos clustr: unknown command "clustr" (did you mean "cluster"?); see "paxos --help"'],
    ];
    for (const [args, expected] of cases) {
      const line = oneLine(2, ...args);
      assert.equal(line, expected);
      assert.doesNotMatch(line, /positional argument|ambiguous|ERR_PARSE_ARGS/);
    }
  });

  test("paxos cluster's quorum and role options are checked before anything starts (exit 2, flag named)", () => {
    const cases: [string[], RegExp][] = [
      [["cluster", "--weights", "2,1,1", "--nodes", "4"], /--weights gives 3 weights for 4 nodes/],
      [["cluster", "--weights", "2,0,1"], /--weights wants positive integers/],
      [
        ["cluster", "--quorum", "flexible"],
        /--quorum flexible needs --phase1-weight W1 and --phase2-weight W2/,
      ],
      [
        ["cluster", "--quorum", "flexible", "--phase1-weight", "1", "--phase2-weight", "2"],
        /--quorum: .*phase-1 quorum \{1\} and phase-2 quorum \{2,3\} share no acceptor/,
      ],
      [["cluster", "--quorum", "most"], /--quorum wants majority, weighted or flexible, got "most"/],
      [["cluster", "--phase1-weight", "2"], /--phase1-weight and --phase2-weight are for --quorum flexible/],
      [
        ["cluster", "--separate-roles", "--weights", "1,1,1"],
        /--weights is for a cluster of collapsed nodes/,
      ],
      [["cluster", "--proposers", "2"], /--proposers is for --separate-roles/],
    ];
    for (const [args, expected] of cases) assert.match(oneLine(2, ...args), expected, args.join(" "));
  });

  test("a course config without multicast addresses and a bad --interface are one line each, at config time", () => {
    const temp = tempDir();
    try {
      const unicast = join(temp.dir, "unicast.conf");
      writeFileSync(
        unicast,
        "clients 10.0.0.1 5000\nproposers 10.0.0.1 6000\nacceptors 10.0.0.1 7000\nlearners 10.0.0.1 8000\n",
      );
      assert.equal(
        oneLine(2, "acceptor", "1", unicast, "--new"),
        `paxos acceptor: ${unicast}: clients 10.0.0.1 is not a multicast address (224.0.0.0 to 239.255.255.255); ` +
          'the role commands talk over UDP multicast (for unicast, use a cluster JSON file and "paxos node")',
      );
      // --debug does not turn a user's mistake into a stack trace.
      assert.match(oneLine(2, "acceptor", "1", unicast, "--new", "--debug"), /is not a multicast address/);
      const course = join(temp.dir, "paxos.conf");
      writeFileSync(
        course,
        "clients 239.0.0.1 5000\nproposers 239.0.0.1 6000\nacceptors 239.0.0.1 7000\nlearners 239.0.0.1 8000\n",
      );
      assert.equal(
        oneLine(2, "learner", "1", course, "--interface", "eth0"),
        'paxos learner: --interface wants the IPv4 address of this machine\'s interface (like 127.0.0.1), got "eth0"',
      );
    } finally {
      temp.remove();
    }
  });

  test("a cluster file with two nodes on one address, a host name or ::1 is refused naming the field", () => {
    const temp = tempDir();
    try {
      const same = clusterFile(temp.dir, [
        { id: 1, host: "127.0.0.1", port: 7101 },
        { id: 2, host: "127.0.0.1", port: 7101 },
      ]);
      assert.equal(
        oneLine(2, "node", "--config", same, "--id", "1"),
        `paxos node: ${same}: nodes.1: node 2 has the address of node 1 (127.0.0.1:7101); each node needs its own`,
      );
      const course = join(temp.dir, "paxos.conf");
      writeFileSync(
        course,
        "clients 239.0.0.1 5000\nproposers 239.0.0.1 6000\nacceptors 239.0.0.1 7000\nlearners 239.0.0.1 8000\n",
      );
      assert.equal(
        oneLine(2, "node", "--config", course, "--id", "1"),
        `paxos node: ${course} is a course config (multicast groups): it is for "paxos acceptor|proposer|learner|client"; "paxos node" takes a cluster JSON file`,
      );
      const named = clusterFile(temp.dir, [{ id: 1, host: "db-1.example", port: 7101 }]);
      assert.match(
        oneLine(2, "node", "--config", named, "--id", "1"),
        /nodes\.0\.host: "db-1\.example" is not an IPv4 address \(host names are not resolved/,
      );
      const v6 = clusterFile(temp.dir, [{ id: 1, host: "::1", port: 7101 }]);
      assert.match(
        oneLine(2, "client", "1", v6),
        /nodes\.0\.host: "::1" is an IPv6 address; nodes talk over IPv4 only \(for loopback, write 127\.0\.0\.1\)/,
      );
    } finally {
      temp.remove();
    }
  });

  test("an unexpected error is one line with a hint; its stack only under --debug; an invariant violation always", () => {
    const said: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((text: string) => said.push(text) > 0) as typeof process.stderr.write;
    try {
      const error = new RangeError("the socket went away");
      assert.equal(reportError("node", error, false), 1);
      assert.equal(reportError("node", error, true), 1);
      const violation = new Error("ballot went backwards");
      violation.name = "InvariantViolation";
      assert.equal(reportError("node", violation, false), 1);
    } finally {
      process.stderr.write = write;
    }
    assert.deepEqual(said[0], "paxos node: the socket went away (run with --debug for the stack trace)\n");
    assert.match(said[1] as string, /^paxos node: RangeError: the socket went away\n\s+at /);
    assert.match(said[2] as string, /^paxos node: InvariantViolation: ballot went backwards\n\s+at /);
  });
});

describe("paxos client without a cluster", () => {
  test("warns when no node answers, gives up at --timeout-ms saying how many values were not decided (exit 1); binds loopback", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      // Nothing listens on these ports.
      const ports = await freeUdpPorts(3);
      const config = clusterFile(
        temp.dir,
        ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port })),
      );
      const client = processes.start("client", ["client", "1", config, "--timeout-ms", "5000"], {
        stdin: true,
      });
      // Two values and two blank lines: the blank lines are not values.
      client.child.stdin?.end("first\n\n   \nsecond\n");
      const exit = await client.finish(30_000);
      assert.deepEqual(exit, { code: 1, signal: null }, client.stderr);
      assert.match(
        client.stderr,
        /paxos client: no node has answered in [34] s; 2 values waiting \(is the cluster running\?/,
      );
      assert.match(
        client.stderr,
        /paxos client: timed out: nothing decided in 5000 ms: 2 values not decided\n/,
      );
      // It sends from loopback, as everything else here does (not 0.0.0.0).
      const started = logRecords(client.stderr, LOG_MESSAGES.started)[0];
      assert.equal((started?.transport as { host?: string } | undefined)?.host, "127.0.0.1", client.stderr);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("Ctrl-C exits 1 saying how many values were not decided; SIGTERM says so too and exits 0 (harnesses stop clients so)", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const ports = await freeUdpPorts(3);
      const config = clusterFile(
        temp.dir,
        ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port })),
      );
      const interrupted = processes.start("client 1", ["client", "1", config], { stdin: true });
      const terminated = processes.start("client 2", ["client", "2", config], { stdin: true });
      interrupted.child.stdin?.write("a\nb\nc\n");
      terminated.child.stdin?.write("d\ne\n");
      await waitFor(() => interrupted.stderr.includes("3 values waiting"), "client 1 to wait for 3 values");
      await waitFor(() => terminated.stderr.includes("2 values waiting"), "client 2 to wait for 2 values");
      interrupted.kill("SIGINT");
      terminated.kill("SIGTERM");
      assert.deepEqual(await interrupted.finish(10_000), { code: 1, signal: null }, interrupted.stderr);
      assert.match(interrupted.stderr, /paxos client: interrupted \(SIGINT\): 3 values not decided\n/);
      assert.deepEqual(await terminated.finish(10_000), { code: 0, signal: null }, terminated.stderr);
      assert.match(terminated.stderr, /paxos client: interrupted \(SIGTERM\): 2 values not decided\n/);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("a line that is not valid UTF-8 is refused with its number (exit 1), never sent with U+FFFD; blank lines are skipped", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const ports = await freeUdpPorts(3);
      const config = clusterFile(
        temp.dir,
        ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port })),
      );
      // Only blank lines and a bad one: nothing is sent, so it exits at once (no cluster needed).
      const client = processes.start("client", ["client", "1", config], { stdin: true });
      client.child.stdin?.end(
        Buffer.concat([Buffer.from("\n \r\n"), Buffer.from([0x61, 0xff, 0xfe, 0x0a]), Buffer.from("\t\n")]),
      );
      const exit = await client.finish(20_000);
      assert.deepEqual(exit, { code: 1, signal: null }, client.stderr);
      assert.match(client.stderr, /paxos client: line 3 is not valid UTF-8; not sent\n/);
      assert.doesNotMatch(client.stderr, /values waiting|not decided/);
      // Blank lines only: nothing to decide, exit 0.
      const blank = processes.start("client blank", ["client", "2", config], { stdin: true });
      blank.child.stdin?.end("\n\n  \n");
      assert.deepEqual(await blank.finish(20_000), { code: 0, signal: null }, blank.stderr);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });
});
