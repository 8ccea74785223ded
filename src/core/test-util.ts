/**
 * Builders the core's tests share (not exported from the folder's index). Pure like the rest of
 * `src/core`, so the purity test holds for it too.
 */

import type { Command, Value } from "./messages.js";
import { createQuorumSystem, type QuorumSystem } from "./quorum.js";

/** Majority quorums over nodes 1..count. */
export function majorityOf(count: number): QuorumSystem {
  const result = createQuorumSystem(
    Array.from({ length: count }, (_, i) => ({ id: i + 1 })),
    { kind: "majority" },
  );
  if (!result.ok) throw new Error(result.error);
  return result.value;
}

export const cmd = (client: number, seq: number, payload = `c${client}s${seq}`): Command => ({
  client,
  seq,
  payload,
});

export const val = (...commands: Command[]): Value => ({ commands });
