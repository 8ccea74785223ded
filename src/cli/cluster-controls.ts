import type { ControlAnswer, ControlRequest, NodeControl } from "../dashboard/index.js";
import type { NodeProcess } from "./cluster.js";
import { answerMessage, type HttpAnswer, type NodeClient, SessionWriter } from "./http-client.js";

/** How long a lock request from the dashboard waits to be granted before it leaves the queue. */
const LOCK_WAIT_MS = 5000;
/** How often the dashboard's lock session is kept alive (well within the 30 s session TTL). */
const KEEPALIVE_MS = 5000;

export interface ClusterControlsOptions {
  /** Requests to the cluster's HTTP API (with failover). */
  readonly client: NodeClient;
  /** Hands a value to the cluster's input queue (written to the key "input"). */
  readonly submit: (value: string) => void;
  /** Node `id`'s current process, if it has one. */
  readonly processOf: (id: number) => NodeProcess | null;
  /** Starts node `id` again on its data directory. */
  readonly restart: (id: number) => void;
}

/**
 * What the dashboard's controls do in `paxos cluster`: crash (SIGKILL) and restart a node's
 * process, cut a node off or set the loss rate (over the node's IPC channel), and key-value and
 * lock requests through the nodes' HTTP API.
 */
export class ClusterControls {
  /** Writes from the dashboard, exactly once each, one at a time (the chain keeps their order). */
  private readonly writer: SessionWriter;
  private writes: Promise<unknown> = Promise.resolve();
  /** The dashboard's session for locks (locks and exactly-once writes take separate sessions). */
  private lockSession: number | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  /** The loss rate set last: a node restarted later gets it too. */
  private lossRate = 0;

  constructor(private readonly options: ClusterControlsOptions) {
    this.writer = new SessionWriter(options.client);
  }

  async run(request: ControlRequest): Promise<ControlAnswer> {
    switch (request.action) {
      case "crash": {
        const proc = this.options.processOf(request.node);
        if (proc === null || proc.exited)
          return { ok: false, message: `node ${request.node} is down already` };
        proc.crashing = true;
        proc.child.kill("SIGKILL");
        return { ok: true, message: `node ${request.node} crashed (SIGKILL)` };
      }
      case "restart": {
        const proc = this.options.processOf(request.node);
        if (proc !== null && !proc.exited) return { ok: false, message: `node ${request.node} is running` };
        this.options.restart(request.node);
        const restarted = this.options.processOf(request.node);
        if (this.lossRate > 0 && restarted !== null)
          this.tell(restarted, { type: "loss", rate: this.lossRate });
        return { ok: true, message: `node ${request.node} restarting on its data directory` };
      }
      case "cut":
      case "reconnect": {
        const proc = this.options.processOf(request.node);
        if (proc === null || proc.exited) return { ok: false, message: `node ${request.node} is down` };
        this.tell(proc, { type: "cut", on: request.action === "cut" });
        return {
          ok: true,
          message:
            request.action === "cut"
              ? `node ${request.node} cut off: it drops every frame in and out`
              : `node ${request.node} reconnected`,
        };
      }
      case "loss": {
        this.lossRate = request.rate;
        for (const id of this.nodeIds()) {
          const proc = this.options.processOf(id);
          if (proc !== null && !proc.exited) this.tell(proc, { type: "loss", rate: request.rate });
        }
        return {
          ok: true,
          message: `every node now drops ${Math.round(request.rate * 100)}% of the frames it sends`,
        };
      }
      case "submit":
        this.options.submit(request.value);
        return { ok: true, message: `submitted "${request.value}" (written to the key "input")` };
      case "kv":
        return this.kv(request.op, request.key, request.value);
      case "lock":
        return this.lock(request.op, request.name);
    }
  }

  /** Stops keeping the lock session alive. */
  close(): void {
    if (this.keepAlive !== null) clearInterval(this.keepAlive);
    this.keepAlive = null;
  }

  private nodeIds(): number[] {
    return this.options.client.nodes.map((_, i) => i + 1);
  }

  /** The lock session expired (its locks went to the next waiters): the next acquire opens another. */
  private forgetExpired(answer: HttpAnswer): void {
    if (answer.json.code === "session-expired") this.lockSession = null;
  }

  private tell(proc: NodeProcess, control: NodeControl): void {
    if (proc.child.connected) proc.child.send(control);
  }

  private kv(op: "put" | "get" | "delete", key: string, value: string | undefined): Promise<ControlAnswer> {
    const path = `/kv/${encodeURIComponent(key)}`;
    if (op === "get")
      return this.options.client.request("GET", path).then(
        (answer) =>
          answer.status === 200
            ? { ok: true, message: `${key} = ${answer.body} (revision ${answer.headers["paxos-revision"]})` }
            : { ok: false, message: answerMessage(answer) },
        (error: Error) => ({ ok: false, message: error.message }),
      );
    const write = this.writes.then(() =>
      op === "put" ? this.writer.write("PUT", path, value ?? "") : this.writer.write("DELETE", path),
    );
    this.writes = write.catch(() => {});
    return write.then((outcome) => {
      if (outcome.kind !== "done") return { ok: false, message: outcome.message };
      const revision = outcome.answer.json.revision;
      return {
        ok: true,
        message:
          op === "put"
            ? `put ${key} = ${value ?? ""} at revision ${revision}`
            : `deleted ${key} (revision ${revision})`,
      };
    });
  }

  private async lock(op: "acquire" | "release", name: string): Promise<ControlAnswer> {
    const client = this.options.client;
    const path = `/lock/${encodeURIComponent(name)}`;
    try {
      if (this.lockSession === null) {
        if (op === "release") return { ok: false, message: `the dashboard holds no lock ${name}` };
        const opened = await client.request("POST", "/session");
        const session = opened.json.session;
        if (opened.status !== 200 || typeof session !== "number")
          return { ok: false, message: `cannot open a session: ${answerMessage(opened)}` };
        this.lockSession = session;
        if (this.keepAlive === null) {
          this.keepAlive = setInterval(() => {
            if (this.lockSession !== null)
              client.request("PUT", `/session/${this.lockSession}`).catch(() => {});
          }, KEEPALIVE_MS);
          this.keepAlive.unref();
        }
      }
      const headers = { "paxos-session": String(this.lockSession) };
      if (op === "acquire") {
        const answer = await client.request("POST", `${path}?wait-ms=${LOCK_WAIT_MS}`, {
          headers,
          timeoutMs: LOCK_WAIT_MS + 5000,
        });
        if (answer.status === 200)
          return {
            ok: true,
            message: `lock ${name} granted to session ${this.lockSession} with token ${answer.json.token}`,
          };
        this.forgetExpired(answer);
        return { ok: false, message: answerMessage(answer) };
      }
      const answer = await client.request("DELETE", path, { headers });
      if (answer.status === 200)
        return { ok: true, message: `lock ${name}: released (${answer.json.released})` };
      this.forgetExpired(answer);
      return { ok: false, message: answerMessage(answer) };
    } catch (error) {
      return { ok: false, message: (error as Error).message };
    }
  }
}
