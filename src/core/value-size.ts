import { commandBytesEstimate } from "./limits.js";
import type { Value } from "./messages.js";

/** A generous estimate of a value's encoded size, used to keep messages within their byte limits. */
export function valueBytesEstimate(value: Value): number {
  let bytes = 16;
  for (const command of value.commands) bytes += commandBytesEstimate(command.payload.length);
  return bytes;
}
