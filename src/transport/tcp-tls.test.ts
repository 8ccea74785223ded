import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { waitFor } from "../test-support/index.js";
import { encodeFrames } from "./framing.js";
import { type TcpTlsOptions, TcpTransport } from "./tcp.js";

/**
 * Certificates made here with `openssl` (docs/security.md, "Mutual TLS", gives the same commands):
 * a cluster CA, certificates it signs for node-1, node-2 and "mallory" (not a member), and a
 * self-signed "node-3" from another CA.
 */
let dir = "";
const pem = (name: string) => readFileSync(join(dir, name), "utf8");

function openssl(args: string[]): void {
  const result = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  assert.equal(result.error, undefined, `openssl is needed for this test: ${result.error?.message}`);
  assert.equal(result.status, 0, `openssl ${args.join(" ")}: ${result.stderr}`);
}

function makeCa(name: string): void {
  openssl(
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
    ]),
  );
}

function makeCert(name: string, ca: string): void {
  openssl(
    ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ]),
  );
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:${name}\n`);
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`].concat([
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ]),
  );
}

const MEMBERS = new Set(["node-1", "node-2", "node-3"]);

function tlsOf(name: string, ca = "cluster-ca"): TcpTlsOptions {
  return {
    cert: pem(`${name}.pem`),
    key: pem(`${name}.key`),
    ca: pem(`${ca}.pem`),
    peerAllowed: (n) => MEMBERS.has(n),
  };
}

describe("TcpTransport with mutual TLS", () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "paxos-tls-"));
    makeCa("cluster-ca");
    makeCa("other-ca");
    for (const name of ["node-1", "node-2", "mallory"]) makeCert(name, "cluster-ca");
    makeCert("node-3", "other-ca");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("two members exchange frames; a non-member, a stranger CA and plain TCP are refused", async () => {
    const a = new TcpTransport({ port: 0, tls: tlsOf("node-1") });
    const b = new TcpTransport({ port: 0, tls: tlsOf("node-2") });
    const mallory = new TcpTransport({ port: 0, tls: { ...tlsOf("mallory"), peerAllowed: () => true } });
    const stranger = new TcpTransport({
      port: 0,
      tls: { ...tlsOf("node-3", "other-ca"), ca: pem("cluster-ca.pem"), peerAllowed: () => true },
    });
    const atB: string[] = [];
    const atA: string[] = [];
    b.onFrame((frame) => atB.push(new TextDecoder().decode(frame)));
    a.onFrame((frame) => atA.push(new TextDecoder().decode(frame)));
    for (const t of [a, b, mallory, stranger]) await t.start();
    try {
      a.send(b.localEndpoint, new TextEncoder().encode("hello from node-1"));
      await waitFor(() => atB.length === 1, "node-2 hears node-1");
      b.send(a.localEndpoint, new TextEncoder().encode("hello from node-2"));
      await waitFor(() => atA.length === 1, "node-1 hears node-2");

      mallory.send(b.localEndpoint, new TextEncoder().encode("from mallory"));
      await waitFor(() => b.tlsRefused >= 1, "node-2 refuses a certificate that names no member");
      stranger.send(b.localEndpoint, new TextEncoder().encode("from another CA"));
      await waitFor(() => b.tlsRefused >= 2, "node-2 refuses a certificate of another CA");

      // Plain TCP to a TLS port: the handshake fails; no frame is delivered.
      const plain = netConnect({ host: "127.0.0.1", port: b.localEndpoint.port });
      await new Promise<void>((resolve) => plain.once("connect", () => resolve()));
      plain.write(encodeFrames([new TextEncoder().encode("in the clear")]));
      await new Promise<void>((resolve) => plain.once("close", () => resolve()));
      // A member refuses to talk to a server whose certificate names no member.
      a.send(mallory.localEndpoint, new TextEncoder().encode("to mallory"));
      await waitFor(() => a.tlsRefused >= 1, "node-1 refuses mallory as a server");

      assert.deepEqual(atB, ["hello from node-1"], "only the member's frame arrived");
    } finally {
      for (const t of [a, b, mallory, stranger]) await t.close();
    }
  });
});
