import { editDistance } from "./args.js";
import { clusterCommand } from "./cluster.js";
import { demoCommand } from "./demo.js";
import { StartError, UsageError } from "./errors.js";
import { kvCommand } from "./kv.js";
import { lincheckCommand } from "./lincheck.js";
import { lockCommand } from "./lock.js";
import { nodeCommand } from "./node.js";
import { roleCommand } from "./roles.js";
import { simCommand } from "./sim.js";

export const MAIN_HELP = `Usage: paxos <command> [options]

Commands:
  acceptor <id> <config>   run an acceptor (course harness interface, UDP multicast)
  proposer <id> <config>   run a proposer
  learner <id> <config>    run a learner: prints decided values on stdout
  client <id> <config>     run a client: submits stdin's lines (config: course file or cluster JSON)
  node --config F --id N   run one collapsed node of a cluster over UDP or TCP (--http: with the
                           key-value store and lock service, over HTTP)
  cluster [--nodes N]      run a local cluster on loopback, one process per node
  kv get|put|del|cas|list|watch ...
           the key-value store of a running cluster, over its nodes' HTTP API
  lock acquire|release NAME
           the lock service of a running cluster
  sim      run the deterministic simulator on one seed or a band of seeds
  demo     watch a simulated 5-node cluster decide values for a few seconds
  lincheck --model register|kv FILE
           check that a history (JSON lines, Jepsen style) is linearizable
  help     this text

Run "paxos <command> --help" for a command's options. Every command takes --debug: an error then
shows its stack trace (without it, an error is one line).`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  sim: simCommand,
  acceptor: (args) => roleCommand("acceptor", args),
  proposer: (args) => roleCommand("proposer", args),
  learner: (args) => roleCommand("learner", args),
  client: (args) => roleCommand("client", args),
  demo: demoCommand,
  node: nodeCommand,
  cluster: clusterCommand,
  kv: kvCommand,
  lock: lockCommand,
  lincheck: lincheckCommand,
};

/** Runs the `paxos` command; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${MAIN_HELP}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  const end = rest.indexOf("--");
  const debug = (end === -1 ? rest : rest.slice(0, end)).includes("--debug");
  // An error thrown later, outside the command's own promise (a socket's, a timer's): one line too.
  const onUncaught = (error: unknown) => process.exit(reportError(name, error, debug));
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
  try {
    if (command === undefined) {
      const near = nearestCommand(name);
      throw new UsageError(`unknown command "${name}"${near}; see "paxos --help"`);
    }
    return await command(rest);
  } catch (error) {
    return reportError(name, error, debug);
  }
}

/**
 * Says what went wrong on stderr and returns the exit status: a usage error (2) or a start error (1)
 * in one line; anything else in one line too (exit 1), with its stack only under `--debug`. An
 * invariant violation is a bug, not a user's mistake: its stack is always shown.
 */
export function reportError(name: string, error: unknown, debug: boolean): number {
  if (error instanceof UsageError || isParseArgsError(error)) {
    process.stderr.write(`paxos ${name}: ${(error as Error).message}\n`);
    return 2;
  }
  if (error instanceof StartError) {
    process.stderr.write(`paxos ${name}: ${error.message}\n`);
    return 1;
  }
  const isError = error instanceof Error;
  const message = isError ? error.message.split("\n")[0] : String(error);
  if (isError && (debug || error.name === "InvariantViolation")) {
    process.stderr.write(`paxos ${name}: ${error.stack ?? message}\n`);
  } else {
    process.stderr.write(`paxos ${name}: ${message} (run with --debug for the stack trace)\n`);
  }
  return 1;
}

/** ' (did you mean "cluster"?)' for a typo of a command, else "". */
function nearestCommand(name: string): string {
  const known = [...Object.keys(COMMANDS), "help"];
  const best = known
    .map((command) => ({ command, distance: editDistance(name, command) }))
    .sort((a, b) => a.distance - b.distance)[0];
  return best !== undefined && best.distance <= 2 ? ` (did you mean "${best.command}"?)` : "";
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}
