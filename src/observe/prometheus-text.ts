/**
 * A reader of the Prometheus text exposition format (version 0.0.4, what `/metrics` serves), for
 * tests, the dashboard and scripts that want a node's numbers without a Prometheus server. It reads
 * `# HELP` and `# TYPE` lines and every sample line (`name{label="value",...} value [timestamp]`,
 * label values with `\\`, `\"` and `\n` escapes); anything else is an error naming its line.
 */

/** One sample line. */
export interface PrometheusSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A whole exposition: every sample in order, and each metric family's type and help. */
export interface PrometheusText {
  readonly samples: readonly PrometheusSample[];
  readonly types: ReadonlyMap<string, string>;
  readonly help: ReadonlyMap<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(text: string, line: number): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  const value = Number(text);
  if (text === "" || Number.isNaN(value)) throw new Error(`line ${line}: "${text}" is not a sample value`);
  return value;
}

/** Reads `{a="1",b="x\"y"}` from the start of `text`; returns the labels and the rest. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // past "{"
  for (;;) {
    while (text[i] === " ") i++;
    if (text[i] === "}") return { labels, rest: text.slice(i + 1) };
    const name = LABEL_NAME.exec(text.slice(i))?.[0];
    if (name === undefined) throw new Error(`line ${line}: a label name expected at "${text.slice(i)}"`);
    i += name.length;
    if (text[i] !== "=" || text[i + 1] !== '"')
      throw new Error(`line ${line}: label ${name} has no ="value"`);
    i += 2;
    let value = "";
    for (;;) {
      const ch = text[i];
      if (ch === undefined) throw new Error(`line ${line}: label ${name}'s value is not closed`);
      if (ch === '"') break;
      if (ch === "\\") {
        const next = text[i + 1];
        value += next === "n" ? "\n" : (next ?? "");
        i += 2;
        continue;
      }
      value += ch;
      i++;
    }
    if (name in labels) throw new Error(`line ${line}: label ${name} given twice`);
    labels[name] = value;
    i++; // past the closing quote
    if (text[i] === ",") i++;
    else if (text[i] !== "}") throw new Error(`line ${line}: "," or "}" expected after label ${name}`);
  }
}

/** Parses a whole exposition; throws an `Error` naming the first line that is not the format. */
export function parsePrometheusText(text: string): PrometheusText {
  const samples: PrometheusSample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    const content = raw.trim();
    if (content === "") continue;
    if (content.startsWith("#")) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)\s?(.*)$/.exec(content);
      if (match === null) continue; // a plain comment
      const [, kind, name, rest] = match as unknown as [string, string, string, string];
      if (kind === "TYPE") types.set(name, rest.trim());
      else help.set(name, rest);
      continue;
    }
    const name = NAME.exec(content)?.[0];
    if (name === undefined) throw new Error(`line ${line}: a metric name expected at "${content}"`);
    let rest = content.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith("{")) ({ labels, rest } = parseLabels(rest, line));
    const fields = rest.trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2)
      throw new Error(`line ${line}: "value [timestamp]" expected after ${name}, got "${rest.trim()}"`);
    samples.push({ name, labels, value: parseValue(fields[0] as string, line) });
  }
  return { samples, types, help };
}

/**
 * The value of the one sample named `name` whose labels include `labels`; throws if there is none
 * or more than one (a test that means one series must say which).
 */
export function sampleValue(
  text: PrometheusText,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const found = samplesOf(text, name, labels);
  if (found.length !== 1)
    throw new Error(`${found.length} samples of ${name} with labels ${JSON.stringify(labels)}, not one`);
  return (found[0] as PrometheusSample).value;
}

/** Every sample named `name` whose labels include `labels`. */
export function samplesOf(
  text: PrometheusText,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): PrometheusSample[] {
  return text.samples.filter(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
}
