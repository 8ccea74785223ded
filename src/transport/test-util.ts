/**
 * Helpers for the transport tests (not exported from the folder's index).
 */

import { createSocket } from "node:dgram";
import { waitFor as waitUntil } from "../test-support/index.js";
import type { Endpoint, Transport } from "./transport.js";

/**
 * The shared `waitFor` (test-support) as these tests call it: resolves once `condition()` is true,
 * polling every event-loop turn (then every millisecond); rejects after `timeoutMs` naming `what`.
 */
export async function waitFor(condition: () => boolean, timeoutMs = 2000, what = "condition"): Promise<void> {
  await waitUntil(condition, what, { timeoutMs, pollMs: 1 });
}

/** A received frame with its sender. */
export interface Received {
  readonly frame: Uint8Array;
  readonly from: Endpoint;
}

/** Sets a handler on `transport` that records every frame, and returns the record. */
export function collect(transport: Transport): Received[] {
  const received: Received[] = [];
  transport.onFrame((frame, from) => received.push({ frame, from }));
  return received;
}

/** The bytes of a frame as text (test payloads are ASCII). */
export function text(frame: Uint8Array): string {
  return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString("latin1");
}

/** A frame holding `value` as ASCII bytes. */
export function frameOf(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value, "latin1"));
}

/**
 * A multicast group for one test: a random address in 239.255.0.0/16 (administratively scoped, local)
 * and a UDP port that was free on 127.0.0.1 a moment ago, so concurrent test runs do not hear each other.
 */
export async function testGroup(): Promise<Endpoint> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  const third = 1 + Math.floor(Math.random() * 254);
  const fourth = 1 + Math.floor(Math.random() * 254);
  return { host: `239.255.${third}.${fourth}`, port };
}
