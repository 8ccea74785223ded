/** Observability: logs now; metrics and the dashboard come later. */
export { createLogger, type Logger } from "./logger.js";
