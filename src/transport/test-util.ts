/**
 * Helpers for the transport tests (not exported from the folder's index).
 */

import { createSocket } from "node:dgram";
import type { Endpoint, Transport } from "./transport.js";

/**
 * Resolves once `condition()` is true, polling every event-loop turn (then every millisecond); rejects
 * after `timeoutMs` with `what` in the message. Use it instead of sleeping for a fixed time.
 */
export async function waitFor(condition: () => boolean, timeoutMs = 2000, what = "condition"): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let polls = 0;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    polls++;
    // A few immediate polls catch fast in-process delivery; then back off to 1 ms so as not to spin.
    await new Promise<void>((resolve) => (polls < 50 ? setImmediate(resolve) : setTimeout(resolve, 1)));
  }
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
