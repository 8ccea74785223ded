import { parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";
import {
  answerMessage,
  EXIT_UNKNOWN,
  type HttpAnswer,
  NodeClient,
  parseNodeList,
  REQUEST_TIMEOUT_MS,
} from "./http-client.js";
import { parseId, parsePositiveInt } from "./process-kit.js";

export const LOCK_HELP = `Usage: paxos lock <acquire|release> NAME [options] --node HOST:PORT[,HOST:PORT...]

The lock service of a running cluster, through the HTTP API of its nodes (docs/applications.md).
A lock is held by a client session; every grant carries a fencing token above every token granted
before it (a resource guarded by the lock refuses requests with a token older than the newest seen).

  acquire NAME   wait until the lock is granted (first come, first served), then print
                 {"token": T, "session": S}. A session is opened for it unless --session is given.
                 The session is kept alive while waiting. The holder must keep its session alive
                 (PUT /session/S, at least every few seconds: a session idle for the cluster's
                 session TTL, 30 s, expires and its locks go to the next waiter), so either:
                 --hold: keep it alive and hold the lock until Ctrl-C (or SIGTERM), then release
                 it; or without --hold, keep the session alive yourself and release it with
                 "paxos lock release NAME --session S"
  release NAME   release the lock (or leave its queue): --session S is the holder's session;
                 prints {"released": "held"|"waiting"}

Options:
  --node LIST        nodes' HTTP addresses, HOST:PORT, comma-separated (default: $PAXOS_NODES)
  --session S        the client session to hold the lock in (acquire: default, a new one)
  --wait-ms N        acquire: give up after N ms without a grant, leaving the queue (default 30000;
                     at most 300000)
  --hold             acquire: hold the lock, keeping the session alive, until Ctrl-C; then release
  --keepalive-ms N   how often the session is kept alive while waiting or holding (default 5000)
  --timeout-ms N     keep trying the nodes for this long when they fail or have no leader
                     (default 20000)
  -h, --help         this text

Exit status: 0 granted (or released); 1 not granted within --wait-ms, refused, or failed; 2 usage
error; 3 outcome unknown (no node could say whether the lock was granted or released).`;

export async function lockCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("lock", args, {
    node: { type: "string" },
    session: { type: "string" },
    "wait-ms": { type: "string" },
    hold: { type: "boolean", default: false },
    "keepalive-ms": { type: "string" },
    "timeout-ms": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    process.stdout.write(`${LOCK_HELP}\n`);
    return 0;
  }
  const [sub, name, ...extra] = positionals;
  if (sub === undefined) throw new UsageError("missing a subcommand: acquire, release");
  if (sub !== "acquire" && sub !== "release")
    throw new UsageError(`unknown subcommand "${sub}" (known: acquire, release)`);
  if (name === undefined || name === "") throw new UsageError(`${sub}: missing NAME`);
  if (extra.length > 0) throw new UsageError(`${sub}: unexpected argument "${extra[0]}"`);
  const session = values.session === undefined ? null : parseId(values.session, "session");
  if (sub === "release") {
    if (session === null) throw new UsageError("release needs --session S (the holder's session)");
    for (const flag of ["wait-ms", "hold", "keepalive-ms"] as const)
      if (flag === "hold" ? values.hold : values[flag] !== undefined)
        throw new UsageError(`release takes no --${flag}`);
  }
  const waitMs = values["wait-ms"] === undefined ? 30_000 : waitMsOf(values["wait-ms"]);
  const keepAliveMs = parsePositiveInt(values["keepalive-ms"], "--keepalive-ms", 5_000);
  const deadlineMs = parsePositiveInt(values["timeout-ms"], "--timeout-ms", 20_000);
  const client = new NodeClient(parseNodeList(values.node), { deadlineMs });
  try {
    if (sub === "release") return await release(client, name, session as number);
    return await acquire(client, name, { session, waitMs, keepAliveMs, hold: values.hold });
  } finally {
    client.close();
  }
}

function waitMsOf(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 300_000)
    throw new UsageError(`--wait-ms wants 0 to 300000, got "${text}"`);
  return Number(text);
}

function failed(sub: string, message: string, status = 1): number {
  process.stderr.write(`paxos lock ${sub}: ${message}\n`);
  return status;
}

const path = (name: string) => `/lock/${encodeURIComponent(name)}`;

async function release(client: NodeClient, name: string, session: number): Promise<number> {
  let answer: HttpAnswer;
  let mayBeDone = false;
  try {
    answer = await client.request("DELETE", path(name), {
      headers: { "paxos-session": String(session) },
      retry: (a) => a.status === 503 || a.status === 504 || a.status === 429,
      onFailure: (failure) => {
        if ("maybeSent" in failure ? failure.maybeSent : failure.status === 504) mayBeDone = true;
      },
    });
  } catch (error) {
    const message = `no node answered (last: ${(error as Error).message})`;
    return mayBeDone
      ? failed("release", `outcome unknown: ${message}`, EXIT_UNKNOWN)
      : failed("release", message);
  }
  if (answer.status === 200) {
    process.stdout.write(`${JSON.stringify(answer.json)}\n`);
    return 0;
  }
  if (answer.status === 504)
    return failed("release", `outcome unknown: ${answerMessage(answer)}`, EXIT_UNKNOWN);
  return failed("release", answerMessage(answer));
}

async function acquire(
  client: NodeClient,
  name: string,
  options: { session: number | null; waitMs: number; keepAliveMs: number; hold: boolean },
): Promise<number> {
  let session = options.session;
  if (session === null) {
    try {
      const opened = await client.request("POST", "/session", {
        retry: (a) => a.status === 503 || a.status === 504 || a.status === 429,
      });
      if (opened.status !== 200 || typeof opened.json.session !== "number")
        return failed("acquire", `cannot open a session: ${answerMessage(opened)}`);
      session = opened.json.session;
    } catch (error) {
      return failed("acquire", `cannot open a session: no node answered (last: ${(error as Error).message})`);
    }
  }
  const held = session as number;
  // Kept alive from now on: while the request waits, and while --hold holds the lock.
  let expired = false;
  const keepAlive = setInterval(() => {
    client
      .request("PUT", `/session/${held}`, { timeoutMs: options.keepAliveMs })
      .then((answer) => {
        if (answer.status === 409) expired = true;
      })
      .catch(() => {});
  }, options.keepAliveMs);
  try {
    const started = performance.now();
    let answer: HttpAnswer;
    try {
      answer = await client.request("POST", `${path(name)}?wait-ms=${options.waitMs}`, {
        headers: { "paxos-session": String(held) },
        timeoutMs: options.waitMs + REQUEST_TIMEOUT_MS,
        deadlineMs: options.waitMs + REQUEST_TIMEOUT_MS,
      });
    } catch (error) {
      return failed(
        "acquire",
        `outcome unknown: no node answered (last: ${(error as Error).message}); session ${held} may hold or wait for the lock until it expires`,
        EXIT_UNKNOWN,
      );
    }
    if (answer.status === 504)
      return answer.json.granted === false
        ? failed("acquire", `lock ${JSON.stringify(name)} not granted within ${options.waitMs} ms`)
        : failed("acquire", `outcome unknown: ${answerMessage(answer)}`, EXIT_UNKNOWN);
    if (answer.status !== 200) return failed("acquire", answerMessage(answer));
    process.stdout.write(`${JSON.stringify({ token: answer.json.token, session: held })}\n`);
    if (!options.hold) return 0;
    process.stderr.write(
      `paxos lock acquire: holding ${JSON.stringify(name)} (granted after ${Math.round(performance.now() - started)} ms); Ctrl-C releases it\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        clearInterval(watchExpiry);
        resolve();
      };
      const watchExpiry = setInterval(() => {
        if (expired) stop();
      }, 100);
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    if (expired) return failed("acquire", `session ${held} expired: the lock is no longer held`);
    return await release(client, name, held);
  } finally {
    clearInterval(keepAlive);
  }
}
