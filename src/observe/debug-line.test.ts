import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Message } from "../core/index.js";
import { debugLine, debugTracer } from "./debug-line.js";

const at = new Date("2026-12-05T14:03:07.412Z");
const ballot = { round: 3, node: 1 };

describe("--debug lines", () => {
  test("one line: time, node, direction, peer by name and address, kind, ballot, slot, counts, bytes", () => {
    const accept: Message = {
      type: "accept",
      from: 1,
      ballot,
      slot: 17,
      value: { commands: [1, 2, 3].map((seq) => ({ client: 9, seq, payload: "x" })) },
    } as Message;
    assert.equal(
      debugLine({
        self: "node 1",
        direction: "out",
        address: "127.0.0.1:7102",
        peer: "node 2",
        message: accept,
        bytes: 152,
        at,
      }),
      "14:03:07.412 node 1 -> node 2 (127.0.0.1:7102) accept ballot=3.1 slot=17 commands=3 bytes=152",
    );
  });

  test("a received message from an address outside the cluster shows the address alone", () => {
    const request: Message = {
      type: "request",
      from: 42,
      commands: [
        { client: 42, seq: 5, payload: "a" },
        { client: 42, seq: 6, payload: "b" },
      ],
    } as Message;
    assert.equal(
      debugLine({
        self: "node 2",
        direction: "in",
        address: "127.0.0.1:50000",
        peer: null,
        message: request,
        bytes: 40,
        at,
      }),
      "14:03:07.412 node 2 <- 127.0.0.1:50000 request from=42 commands=2 seq=5..6 bytes=40",
    );
  });

  test("every kind names its ballot and slots the same way", () => {
    const cases: Array<[Message, string]> = [
      [{ type: "prepare", from: 1, ballot, firstSlot: 5 } as Message, "prepare ballot=3.1 slot=5.."],
      [{ type: "accepted", from: 2, ballot, slot: 9 } as Message, "accepted ballot=3.1 slot=9"],
      [
        { type: "heartbeat", from: 1, ballot, decidedThrough: 12 } as Message,
        "heartbeat ballot=3.1 decided-through=12",
      ],
      [
        {
          type: "decide",
          from: 1,
          entries: [
            { slot: 4, value: { commands: [] } },
            { slot: 5, value: { commands: [] } },
          ],
        } as unknown as Message,
        "decide slot=4..5 slots=2",
      ],
      [
        { type: "reject", from: 3, ballot, promised: { round: 4, node: 2 }, slot: 7 } as Message,
        "reject ballot=3.1 promised=4.2 slot=7",
      ],
    ];
    for (const [message, expected] of cases) {
      const line = debugLine({
        self: "node 1",
        direction: "in",
        address: "h:1",
        peer: null,
        message,
        bytes: 1,
        at,
      });
      assert.equal(line, `14:03:07.412 node 1 <- h:1 ${expected} bytes=1`);
      assert.equal(line.includes("\n"), false);
    }
  });

  test("debugTracer writes one newline-ended line per message, naming members from the map", () => {
    const written: string[] = [];
    const trace = debugTracer("node 1", new Map([["127.0.0.1:7103", "node 3"]]), (line) =>
      written.push(line),
    );
    trace("in", { type: "accepted", from: 3, ballot, slot: 2 } as Message, "127.0.0.1:7103", 30);
    assert.equal(written.length, 1);
    assert.match(
      written[0] as string,
      /^\d\d:\d\d:\d\d\.\d{3} node 1 <- node 3 \(127\.0\.0\.1:7103\) accepted ballot=3\.1 slot=2 bytes=30\n$/,
    );
  });
});
