import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_LIMITS } from "../core/index.js";
import { COURSE_GROUPS, parseClusterConfig, parseCourseConfig } from "./config.js";

/** A complete, valid course config; tests change one line of it at a time. */
const COURSE_LINES = [
  "clients 239.0.0.1 5000",
  "proposers 239.0.0.1 6000",
  "acceptors 239.0.0.1 7000",
  "learners 239.0.0.1 8000",
] as const;

function withLine(index: number, line: string): string {
  const lines: string[] = [...COURSE_LINES];
  lines[index] = line;
  return `${lines.join("\n")}\n`;
}

describe("parseCourseConfig: the course harness format", () => {
  test("reads one multicast group per role", () => {
    const parsed = parseCourseConfig(`${COURSE_LINES.join("\n")}\n`);
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.deepEqual(parsed.value.groups, {
      client: { host: "239.0.0.1", port: 5000 },
      proposer: { host: "239.0.0.1", port: 6000 },
      acceptor: { host: "239.0.0.1", port: 7000 },
      learner: { host: "239.0.0.1", port: 8000 },
    });
    assert.deepEqual(parsed.value.warnings, []);
  });

  test("the lines may come in any order, with no final newline", () => {
    const parsed = parseCourseConfig([...COURSE_LINES].reverse().join("\n"));
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.equal(parsed.value.groups.learner.port, 8000);
    assert.equal(parsed.value.groups.client.port, 5000);
  });

  test("skips blank lines, comment lines and trailing comments; accepts tabs, CRLF and indentation", () => {
    const text = [
      "# the course harness config",
      "",
      "   ",
      "clients\t239.0.0.1\t5000",
      "  proposers 239.0.0.1 6000   # the leaders",
      "\t# indented comment",
      "acceptors   239.0.0.1    7000",
      "learners 239.0.0.1 8000",
      "",
    ].join("\r\n");
    const parsed = parseCourseConfig(text);
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.deepEqual(parsed.value.groups.client, { host: "239.0.0.1", port: 5000 });
    assert.deepEqual(parsed.value.groups.proposer, { host: "239.0.0.1", port: 6000 });
    assert.deepEqual(parsed.value.groups.acceptor, { host: "239.0.0.1", port: 7000 });
    assert.deepEqual(parsed.value.warnings, []);
  });

  test("an unknown line is a warning naming its line number, and the rest still parses", () => {
    const text = [
      ...COURSE_LINES.slice(0, 2),
      "replicas 239.0.0.1 9000",
      ...COURSE_LINES.slice(2),
      "garbage",
    ].join("\n");
    const parsed = parseCourseConfig(text);
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.equal(parsed.value.warnings.length, 2, parsed.value.warnings.join("\n"));
    assert.match(parsed.value.warnings[0] ?? "", /^line 3: .*"replicas"/);
    assert.match(parsed.value.warnings[1] ?? "", /^line 6: .*"garbage"/);
    assert.equal(parsed.value.groups.learner.port, 8000);
  });

  test("group names are case-sensitive: 'Learners' is unknown, so the learners line is missing", () => {
    const parsed = parseCourseConfig(withLine(3, "Learners 239.0.0.1 8000"));
    assert.equal(parsed.ok, false);
    assert.match(parsed.ok ? "" : parsed.error, /"learners"/);
  });

  test("a group given twice is a warning and the last one wins", () => {
    const parsed = parseCourseConfig(`${COURSE_LINES.join("\n")}\nlearners 239.0.0.2 8001\n`);
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.deepEqual(parsed.value.groups.learner, { host: "239.0.0.2", port: 8001 });
    assert.equal(parsed.value.warnings.length, 1);
    assert.match(parsed.value.warnings[0] ?? "", /^line 5: .*learners/);
  });

  test("each missing group is an error naming that group", () => {
    for (const [index, name] of Object.keys(COURSE_GROUPS).entries()) {
      const lines = COURSE_LINES.filter((_, i) => i !== index);
      const parsed = parseCourseConfig(lines.join("\n"));
      assert.equal(parsed.ok, false, `without ${name}`);
      assert.match(parsed.ok ? "" : parsed.error, new RegExp(`"${name}"`), `without ${name}`);
    }
  });

  test("an empty file or one with only comments names a missing group", () => {
    for (const text of ["", "\n\n", "# nothing here\n"]) {
      const parsed = parseCourseConfig(text);
      assert.equal(parsed.ok, false);
      assert.match(parsed.ok ? "" : parsed.error, /missing the "\w+" line/);
    }
  });

  test("a bad IP address is an error naming the line and the address", () => {
    for (const host of ["239.0.0", "239.0.0.256", "localhost", "::1", "ff02::1", "239.0.0.1.5"]) {
      const parsed = parseCourseConfig(withLine(2, `acceptors ${host} 7000`));
      assert.equal(parsed.ok, false, host);
      const error = parsed.ok ? "" : parsed.error;
      assert.match(error, /^line 3: /, host);
      assert.ok(error.includes(host), `${host}: ${error}`);
    }
  });

  test("a bad port is an error naming the line and the port", () => {
    for (const port of ["0", "65536", "-1", "70000", "80a", "port", "7000.5"]) {
      const parsed = parseCourseConfig(withLine(1, `proposers 239.0.0.1 ${port}`));
      assert.equal(parsed.ok, false, port);
      const error = parsed.ok ? "" : parsed.error;
      assert.match(error, /^line 2: /, port);
      assert.ok(error.includes(port), `${port}: ${error}`);
    }
  });

  test("a port must be written in decimal digits (no hex, exponent, sign or fraction)", () => {
    // Number() reads "0x1F40" as 8000 and "1e3" as 1000: a typo would silently pick another port.
    // The command-line flags already insist on digits (process-kit's parsePositiveInt: /^\d+$/).
    for (const port of ["0x1F40", "1e3", "+8000", "8000.0", "0b1010"]) {
      const parsed = parseCourseConfig(withLine(3, `learners 239.0.0.1 ${port}`));
      assert.equal(
        parsed.ok,
        false,
        `port "${port}" was accepted as ${parsed.ok ? parsed.value.groups.learner.port : ""}`,
      );
      assert.match(parsed.ok ? "" : parsed.error, /^line 4: /);
    }
  });

  test("a known group with too few or too many fields is an error naming the line", () => {
    for (const line of ["learners 239.0.0.1", "learners", "learners 239.0.0.1 8000 extra"]) {
      const parsed = parseCourseConfig(withLine(3, line));
      assert.equal(parsed.ok, false, line);
      assert.match(parsed.ok ? "" : parsed.error, /^line 4: expected "<group> <ip> <port>"/, line);
    }
  });

  test("the line number counts blank and comment lines", () => {
    const text = `# header\n\n${COURSE_LINES.slice(0, 3).join("\n")}\n\nlearners 239.0.0.1 99999\n`;
    const parsed = parseCourseConfig(text);
    assert.equal(parsed.ok, false);
    assert.match(parsed.ok ? "" : parsed.error, /^line 7: /);
  });
});

interface NodeEntry {
  id: number;
  host: string;
  port: number;
  weight?: number;
  acceptor?: boolean;
}

function nodes(count: number, basePort = 7101): NodeEntry[] {
  return Array.from({ length: count }, (_, i) => ({ id: i + 1, host: "127.0.0.1", port: basePort + i }));
}

function parse(value: unknown) {
  return parseClusterConfig(JSON.stringify(value));
}

function errorOf(result: ReturnType<typeof parseClusterConfig>): string {
  assert.equal(result.ok, false, "expected an error");
  return result.ok ? "" : result.error;
}

describe("parseClusterConfig", () => {
  test("a minimal file gets the documented defaults", () => {
    const parsed = parse({ nodes: nodes(3) });
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.equal(parsed.value.name, "paxos");
    assert.deepEqual(parsed.value.quorum, { kind: "majority" });
    assert.equal(parsed.value.transport, "udp");
    assert.equal(parsed.value.codec, "binary");
    assert.equal(parsed.value.tickMs, 10);
    assert.deepEqual(parsed.value.acceptors, [{ id: 1 }, { id: 2 }, { id: 3 }]);
    assert.deepEqual(parsed.value.nodes, nodes(3));
  });

  test("a full file keeps every field; non-voting nodes are not acceptors; weights are carried", () => {
    const list = nodes(4);
    list[0] = { ...(list[0] as NodeEntry), weight: 3 };
    list[3] = { ...(list[3] as NodeEntry), acceptor: false };
    const parsed = parse({
      name: "test",
      nodes: list,
      quorum: { kind: "weighted" },
      transport: "tcp",
      codec: "json",
      tickMs: 5,
    });
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.equal(parsed.value.name, "test");
    assert.equal(parsed.value.transport, "tcp");
    assert.equal(parsed.value.codec, "json");
    assert.equal(parsed.value.tickMs, 5);
    assert.deepEqual(parsed.value.acceptors, [{ id: 1, weight: 3 }, { id: 2 }, { id: 3 }]);
    assert.equal(parsed.value.nodes.length, 4);
  });

  test("session limits are the cluster's: from the file (every node reads the same one), defaults otherwise", () => {
    const defaults = parse({ nodes: nodes(3) });
    assert.ok(defaults.ok);
    assert.deepEqual(defaults.value.sessionLimits, {
      clientsMax: DEFAULT_LIMITS.clientsMax,
      clientRangesMax: DEFAULT_LIMITS.clientRangesMax,
    });
    const text = JSON.stringify({ nodes: nodes(3), clientsMax: 50, clientRangesMax: 4 });
    // Each node of the cluster parses the same file; there is no per-node setting to differ.
    const perNode = [1, 2, 3].map(() => parseClusterConfig(text));
    for (const parsed of perNode) {
      assert.ok(parsed.ok);
      assert.deepEqual(parsed.value.sessionLimits, { clientsMax: 50, clientRangesMax: 4 });
    }
    for (const bad of [0, -1, 2.5, "10", 10_000_001]) {
      assert.match(errorOf(parse({ nodes: nodes(3), clientsMax: bad })), /^clientsMax: /);
    }
    for (const bad of [0, 1_000_001]) {
      assert.match(errorOf(parse({ nodes: nodes(3), clientRangesMax: bad })), /^clientRangesMax: /);
    }
  });

  test("bad JSON is an error that says so", () => {
    for (const text of ["", "{", '{"nodes": [}', "nodes: []", "{'nodes': []}"]) {
      assert.match(errorOf(parseClusterConfig(text)), /^not valid JSON: /, JSON.stringify(text));
    }
  });

  test("JSON that is not an object is an error at the top level", () => {
    for (const text of ["[]", "null", "42", '"nodes"']) {
      assert.match(errorOf(parseClusterConfig(text)), /^\(top level\): /, text);
    }
  });

  test("missing or empty nodes is an error naming nodes", () => {
    assert.match(errorOf(parse({})), /^nodes: /);
    assert.match(errorOf(parse({ quorum: { kind: "majority" } })), /^nodes: /);
    assert.match(errorOf(parse({ nodes: [] })), /^nodes: /);
    assert.match(errorOf(parse({ nodes: {} })), /^nodes: /);
  });

  test("a duplicate node id is an error naming nodes and the id", () => {
    const list = nodes(3);
    list.push({ id: 2, host: "127.0.0.1", port: 7200 });
    const error = errorOf(parse({ nodes: list }));
    assert.match(error, /^nodes: /);
    assert.match(error, /\bid 2\b/);
  });

  test("two nodes on one host:port is an error naming the second node and the address", () => {
    const list = nodes(3);
    list[2] = { id: 3, host: "127.0.0.1", port: list[0]?.port as number };
    const error = errorOf(parse({ nodes: list }));
    assert.equal(
      error,
      `nodes.2: node 3 has the address of node 1 (127.0.0.1:${list[0]?.port}); each node needs its own`,
    );
    // The same port on two hosts is two addresses.
    list[2] = { id: 3, host: "127.0.0.2", port: list[0]?.port as number };
    assert.ok(parse({ nodes: list }).ok);
  });

  test("a host that is a name or an IPv6 address is refused at config time, naming the field", () => {
    for (const [host, says] of [
      ["node-a.example", /not an IPv4 address \(host names are not resolved/],
      ["localhost", /write the node's address, 127\.0\.0\.1\)/],
      ["::1", /IPv6 address; nodes talk over IPv4 only \(for loopback, write 127\.0\.0\.1\)/],
      ["fe80::1", /IPv6/],
    ] as const) {
      const list = nodes(3);
      list[1] = { id: 2, host, port: 7102 };
      const error = errorOf(parse({ nodes: list }));
      assert.match(error, /^nodes\.1\.host: /, host);
      assert.match(error, says, host);
    }
  });

  test("a bad port is an error naming the node's port field", () => {
    for (const port of [0, -1, 65536, 7101.5, "7101", null]) {
      const list: unknown[] = nodes(3);
      list[1] = { id: 2, host: "127.0.0.1", port };
      assert.match(errorOf(parse({ nodes: list })), /^nodes\.1\.port: /, String(port));
    }
  });

  test("a missing or bad id or host names the field", () => {
    assert.match(errorOf(parse({ nodes: [{ host: "127.0.0.1", port: 7101 }] })), /^nodes\.0\.id: /);
    assert.match(errorOf(parse({ nodes: [{ id: 0, host: "127.0.0.1", port: 7101 }] })), /^nodes\.0\.id: /);
    assert.match(errorOf(parse({ nodes: [{ id: 1.5, host: "127.0.0.1", port: 7101 }] })), /^nodes\.0\.id: /);
    assert.match(errorOf(parse({ nodes: [{ id: 1, host: "", port: 7101 }] })), /^nodes\.0\.host: /);
    assert.match(errorOf(parse({ nodes: [{ id: 1, port: 7101 }] })), /^nodes\.0\.host: /);
  });

  test("an unknown key is an error naming where it is and the key", () => {
    const top = errorOf(parse({ nodes: nodes(3), quorom: { kind: "majority" } }));
    assert.match(top, /^\(top level\): /);
    assert.match(top, /"quorom"/);
    const list: unknown[] = nodes(3);
    list[2] = { id: 3, host: "127.0.0.1", port: 7103, prot: 1 };
    const inNode = errorOf(parse({ nodes: list }));
    assert.match(inNode, /^nodes\.2: /);
    assert.match(inNode, /"prot"/);
    const inQuorum = errorOf(parse({ nodes: nodes(3), quorum: { kind: "majority", size: 2 } }));
    assert.match(inQuorum, /^quorum: /);
    assert.match(inQuorum, /"size"/);
  });

  test("bad enumerations and ranges name their field", () => {
    assert.match(errorOf(parse({ nodes: nodes(3), transport: "sctp" })), /^transport: /);
    assert.match(errorOf(parse({ nodes: nodes(3), codec: "xml" })), /^codec: /);
    assert.match(errorOf(parse({ nodes: nodes(3), tickMs: 0 })), /^tickMs: /);
    assert.match(errorOf(parse({ nodes: nodes(3), quorum: { kind: "random" } })), /^quorum/);
    assert.match(
      errorOf(parse({ nodes: nodes(3), quorum: { kind: "flexible", phase1Weight: 2 } })),
      /^quorum\.phase2Weight: /,
    );
    const weighted = nodes(3).map((node) => ({ ...node, weight: 0 }));
    assert.match(errorOf(parse({ nodes: weighted })), /^nodes\.0\.weight: /);
  });

  test("a flexible quorum whose phase-1 and phase-2 quorums can miss each other names two disjoint sets", () => {
    const error = errorOf(
      parse({ nodes: nodes(6), quorum: { kind: "flexible", phase1Weight: 3, phase2Weight: 3 } }),
    );
    assert.match(error, /^quorum: /);
    const sets = [...error.matchAll(/\{([\d,]+)\}/g)].map((match) =>
      (match[1] as string).split(",").map((id) => Number(id)),
    );
    assert.equal(sets.length, 2, error);
    const [phase1, phase2] = sets as [number[], number[]];
    assert.ok(phase1.length >= 3 && phase2.length >= 3, error);
    assert.deepEqual(
      phase1.filter((id) => phase2.includes(id)),
      [],
      `the two named sets must be disjoint: ${error}`,
    );
    for (const id of [...phase1, ...phase2]) assert.ok(id >= 1 && id <= 6, error);
  });

  test("a flexible quorum whose quorums always intersect is accepted", () => {
    const parsed = parse({ nodes: nodes(6), quorum: { kind: "flexible", phase1Weight: 4, phase2Weight: 3 } });
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    assert.deepEqual(parsed.value.quorum, { kind: "flexible", phase1Weight: 4, phase2Weight: 3 });
  });

  test("a cluster with no voting node is an error naming the quorum", () => {
    const list = nodes(2).map((node) => ({ ...node, acceptor: false }));
    assert.match(errorOf(parse({ nodes: list })), /^quorum: /);
  });
});
