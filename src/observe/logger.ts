import { type Logger, pino } from "pino";

export type { Logger };

/**
 * The process logger: JSON lines on stderr (stdout is reserved for decided values), so a learner's
 * output stays clean for the course harness.
 */
export function createLogger(name: string, level: string = process.env.PAXOS_LOG_LEVEL ?? "info"): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
