/** Observability: logs (and the log messages other code reads) now; metrics and the dashboard come later. */

export {
  hasLogged,
  LOG_MESSAGES,
  type LogMessage,
  type LogRecord,
  logRecords,
  numberField,
  parseLogLine,
  proposerModeMessage,
} from "./log-messages.js";
export { createLogger, type Logger } from "./logger.js";
