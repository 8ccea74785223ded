import { type Logger, pino } from "pino";

export type { Logger };

/** The log levels, least to most verbose after `silent` (pino's). */
export const LOG_LEVELS = ["silent", "fatal", "error", "warn", "info", "debug", "trace"] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The level named by `text` (`--log-level`, `PAXOS_LOG_LEVEL`), or a one-line error naming `what`
 * and the levels there are.
 */
export function parseLogLevel(
  text: string,
  what: string,
): { ok: true; value: LogLevel } | { ok: false; error: string } {
  const level = LOG_LEVELS.find((known) => known === text.trim().toLowerCase());
  if (level !== undefined) return { ok: true, value: level };
  return { ok: false, error: `${what} wants one of ${LOG_LEVELS.join(", ")}; got "${text}"` };
}

/**
 * The process logger: JSON lines on stderr (stdout is reserved for decided values), so a learner's
 * output stays clean for the course harness. The level is `level`, else `PAXOS_LOG_LEVEL`, else
 * "info"; an unknown `PAXOS_LOG_LEVEL` is a clear error (check it first with `parseLogLevel`).
 */
export function createLogger(name: string, level?: LogLevel): Logger {
  let chosen: LogLevel = level ?? "info";
  if (level === undefined && process.env.PAXOS_LOG_LEVEL !== undefined) {
    const parsed = parseLogLevel(process.env.PAXOS_LOG_LEVEL, "PAXOS_LOG_LEVEL");
    if (!parsed.ok) throw new RangeError(parsed.error);
    chosen = parsed.value;
  }
  return pino({ name, level: chosen, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
