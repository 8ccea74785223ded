/** Runners that reproduce external test harnesses. */
export { runUsi, type UsiRunOptions, type UsiRunResult } from "./usi.js";
