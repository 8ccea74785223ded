/** Observability: logs (and the log messages other code reads), `--debug` lines and metrics. */

export { type DebugEvent, debugLine, debugTracer, messageFields } from "./debug-line.js";
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
export { createLogger, LOG_LEVELS, type Logger, type LogLevel, parseLogLevel } from "./logger.js";
export {
  type HttpRoute,
  httpRouteOf,
  NodeMetrics,
  type NodeMetricsOptions,
  type NodeMetricsSample,
} from "./metrics.js";
export {
  type PrometheusSample,
  type PrometheusText,
  parsePrometheusText,
  samplesOf,
  sampleValue,
} from "./prometheus-text.js";
