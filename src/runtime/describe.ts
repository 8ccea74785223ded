import type { Message } from "../core/index.js";

/** One short line per message, for `--debug` traces. */
export function describeMessage(message: Message): string {
  const b = (ballot: { round: number; node: number }) => `${ballot.round}.${ballot.node}`;
  switch (message.type) {
    case "request":
      return `request from ${message.from}: ${message.commands.length} command(s) seq ${message.commands[0]?.seq ?? "-"}..`;
    case "ack":
      return `ack from ${message.from} to client ${message.client}: ${message.seqs.length} seq(s)`;
    case "refuse":
      return `refuse from ${message.from} to client ${message.client}: ${message.seqs.length} seq(s), ${message.reason}`;
    case "prepare":
      return `prepare from ${message.from} ballot ${b(message.ballot)} slots ${message.firstSlot}..`;
    case "promise":
      return `promise from ${message.from} ballot ${b(message.ballot)} ${message.accepted.length} vote(s) next ${message.nextSlot ?? "none"}`;
    case "accept":
      return `accept from ${message.from} ballot ${b(message.ballot)} slot ${message.slot} (${message.value.commands.length} command(s))`;
    case "accepted":
      return `accepted from ${message.from} ballot ${b(message.ballot)} slot ${message.slot}`;
    case "reject":
      return `reject from ${message.from} ballot ${b(message.ballot)} promised ${b(message.promised)} slot ${message.slot}`;
    case "decide":
      return `decide from ${message.from}: ${message.entries.length} slot(s) from ${message.entries[0]?.slot ?? "-"}`;
    case "heartbeat":
      return `heartbeat from ${message.from} ballot ${b(message.ballot)} decided through ${message.decidedThrough}`;
    case "catchup":
      return `catchup from ${message.role} ${message.from}: slots ${message.fromSlot}..${message.toSlot}`;
    case "snapshot-request":
      return `snapshot-request from ${message.role} ${message.from}: snapshot ${message.slot}@${message.offset}`;
    case "snapshot-chunk":
      return `snapshot-chunk from ${message.from}: slot ${message.slot} ${message.offset}+${message.data.length}/${message.length}`;
    case "rejoin-query":
      return `rejoin-query from ${message.from} nonce ${message.nonce} promised ${message.promised.round}.${message.promised.node}`;
    case "rejoin-report":
      return `rejoin-report from ${message.from} nonce ${message.nonce} ${message.voting ? `promised ${b(message.promised)}` : "not voting"} voted through ${message.votedThrough} leads ${b(message.leaderBallot)} proposed through ${message.proposedThrough}`;
  }
}
