import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { EnvelopeGuard } from "../codec/index.js";
import { binaryCodec } from "../codec/index.js";
import { Client, type Command, Prng, parsePrintedLine, printableLine } from "../core/index.js";
import { hasLogged, LOG_MESSAGES } from "../observe/index.js";
import {
  type AddressBook,
  ClusterAddressBook,
  clusterEnvelope,
  courseEnvelope,
  Driver,
  GroupAddressBook,
  NO_KEYS,
  parseClusterConfig,
  parseCourseConfig,
} from "../runtime/index.js";
import { MemoryStorage } from "../storage/index.js";
import {
  childrenOf,
  freeUdpPorts,
  ProcessGroup,
  type StartedProcess,
  waitFor,
} from "../test-support/index.js";
import { MulticastTransport, type Transport, UdpTransport } from "../transport/index.js";
import { demoSlotLine } from "./demo.js";

// Every printer of decided values writes one value per line, escaped by `printableLine` where a raw
// value would break the line (docs/security.md, "The edge: clients, printers and limits").

/** Payloads that would break line-oriented output if printed raw, and some that print as they are. */
const HOSTILE_PAYLOADS = [
  "plain value",
  "two\nlines",
  "carriage\rreturn",
  "crlf\r\nend",
  "\u001b[2Jclears the screen",
  '"starts with a quote"',
  "tab\tinside",
  "nel\u0085and line separator\u2028",
  "nul\u0000byte",
  "back\\slash",
];

/** The units in `text` that break or steer line-oriented output (C0 but tab, DEL, C1, U+2028/9). */
function lineBreakingUnits(text: string): string[] {
  return [...text].filter((c) => {
    const unit = c.charCodeAt(0);
    return (
      (unit < 0x20 && unit !== 0x09) || (unit >= 0x7f && unit <= 0x9f) || unit === 0x2028 || unit === 0x2029
    );
  });
}

function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "paxos-printers-test-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

const started = (proc: StartedProcess) => () => hasLogged(proc.stderr, LOG_MESSAGES.started);

/**
 * A library `Client` in this process, driven by a real `Driver`: the way an application (and the KV
 * store) submits values that no stdin line can hold, such as one with a newline.
 */
async function libraryClient(
  transport: Transport,
  addressBook: AddressBook,
  envelope: EnvelopeGuard,
): Promise<Driver<Client>> {
  const driver = new Driver({
    name: "test client",
    envelope,
    role: new Client({ id: 4242, prng: new Prng(4242) }),
    transport,
    codec: binaryCodec,
    addressBook,
    storage: new MemoryStorage(),
    tickMs: 10,
    onFatal: (error) => {
      throw error;
    },
  });
  await driver.start();
  return driver;
}

function submitAll(driver: Driver<Client>, payloads: readonly string[]): void {
  driver.run((client) => {
    const result = client.submitAll(payloads);
    assert.deepEqual(result.refused, []);
    return result.output;
  });
}

/** Each value printed once, on its own line, as `printableLine` writes it, and parsing back to itself. */
function assertPrintedOnePerLine(stdout: string, payloads: readonly string[], who: string): void {
  const printed = lines(stdout);
  assert.deepEqual(
    [...printed].sort(),
    payloads.map(printableLine).sort(),
    `${who} printed ${JSON.stringify(printed)}`,
  );
  const parsed = printed.map((line) => {
    const result = parsePrintedLine(line);
    assert.ok(result.ok, `${who}: ${line}`);
    return result.value;
  });
  assert.deepEqual([...parsed].sort(), [...payloads].sort());
}

describe("printers of decided values escape what would break a line", () => {
  test("paxos node prints each library client's value on one line, escaped where needed", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    let driver: Driver<Client> | null = null;
    try {
      const ports = await freeUdpPorts(3);
      const nodes = ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port }));
      const configText = JSON.stringify({ nodes, transport: "udp", quorum: { kind: "majority" } });
      const configPath = join(temp.dir, "cluster.json");
      writeFileSync(configPath, configText);
      const nodeProcs = nodes.map((node) =>
        processes.start(`node ${node.id}`, [
          "node",
          "--config",
          configPath,
          "--id",
          String(node.id),
          "--new",
        ]),
      );
      for (const proc of nodeProcs) await waitFor(started(proc), `${proc.name} to start`);
      const cluster = parseClusterConfig(configText);
      assert.ok(cluster.ok);
      driver = await libraryClient(
        new UdpTransport({ host: "127.0.0.1", port: 0 }),
        new ClusterAddressBook(cluster.value),
        clusterEnvelope(cluster.value, { kind: "client", id: 4242 }, { keys: NO_KEYS, incarnation: 1 }),
      );
      submitAll(driver, HOSTILE_PAYLOADS);
      await waitFor(
        () => nodeProcs.every((proc) => lines(proc.stdout).length >= HOSTILE_PAYLOADS.length),
        "every node to print every value",
      );
      for (const proc of nodeProcs) assertPrintedOnePerLine(proc.stdout, HOSTILE_PAYLOADS, proc.name);
    } finally {
      await driver?.stop();
      await processes.stopAll();
      temp.remove();
    }
  });

  test("paxos learner (the course harness's learner.sh) prints each value on one line, escaped where needed", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    let driver: Driver<Client> | null = null;
    try {
      const base = 20_000 + Math.floor(Math.random() * (40_000 - 4));
      const group = "239.0.0.1";
      const configText =
        `clients ${group} ${base}\nproposers ${group} ${base + 1}\n` +
        `acceptors ${group} ${base + 2}\nlearners ${group} ${base + 3}\n`;
      const configPath = join(temp.dir, "paxos.conf");
      writeFileSync(configPath, configText);
      const roles = [
        ...[1, 2, 3].map((id) => ({
          name: `acceptor ${id}`,
          args: ["acceptor", String(id), configPath, "--new"],
        })),
        { name: "proposer 1", args: ["proposer", "1", configPath] },
        { name: "learner 1", args: ["learner", "1", configPath] },
      ].map(({ name, args }) => processes.start(name, args));
      for (const proc of roles) await waitFor(started(proc), `${proc.name} to start`);
      const learner = roles[4] as StartedProcess;
      const course = parseCourseConfig(configText);
      assert.ok(course.ok);
      driver = await libraryClient(
        new MulticastTransport({ groups: [course.value.groups.client], interfaceAddress: "127.0.0.1" }),
        new GroupAddressBook(course.value.groups),
        courseEnvelope(course.value, { kind: "client", id: 4242 }, { keys: NO_KEYS, incarnation: 1 }),
      );
      submitAll(driver, HOSTILE_PAYLOADS);
      await waitFor(
        () => lines(learner.stdout).length >= HOSTILE_PAYLOADS.length,
        "the learner to print every value",
      );
      assertPrintedOnePerLine(learner.stdout, HOSTILE_PAYLOADS, "learner 1");
    } finally {
      await driver?.stop();
      await processes.stopAll();
      temp.remove();
    }
  });

  test("paxos cluster prints 'decided: ' and the escaped value (typed lines cannot hold a newline)", async () => {
    const processes = new ProcessGroup();
    try {
      const base = 20_000 + Math.floor(Math.random() * 40_000);
      // Typed lines: readline ends a line at \n and at \r, so these are what a terminal can send.
      const typed = ["\u001b[31mred", '"quoted"', "nel\u0085x", "plain"];
      const cluster = processes.start("cluster", ["cluster", "--nodes", "3", "--base-port", String(base)], {
        stdin: true,
      });
      await waitFor(() => cluster.stderr.includes("paxos cluster: 3 nodes"), "the cluster to start");
      await waitFor(() => childrenOf(cluster.child.pid as number).length === 3, "three node processes");
      for (const pid of childrenOf(cluster.child.pid as number)) processes.grandchildren.add(pid);
      cluster.child.stdin?.write(`${typed.join("\n")}\n`);
      const expected = typed.map((value) => `decided: ${printableLine(value)}`);
      await waitFor(
        () => expected.every((line) => lines(cluster.stdout).includes(line)),
        "every value printed",
      );
      assert.equal(lines(cluster.stdout).length, typed.length, cluster.stdout);
    } finally {
      await processes.stopAll();
    }
  });

  test("paxos demo writes each slot on one line whatever its values hold", () => {
    const commands: Command[] = HOSTILE_PAYLOADS.map((payload, i) => ({ client: 1, seq: i + 1, payload }));
    const line = demoSlotLine(7, { commands });
    assert.equal(line.indexOf("\n"), line.length - 1, JSON.stringify(line));
    assert.deepEqual(lineBreakingUnits(line.slice(0, -1)), []);
    assert.equal(line, `slot   7: ${HOSTILE_PAYLOADS.map(printableLine).join(" ")}\n`);
    assert.equal(demoSlotLine(1, { commands: [] }), "slot   1: (no-op)\n");
  });
});
