// A real WebSocket server speaking the registry's side of the agent protocol, for agent tests:
// it checks the Authorization header, validates every frame with the shared schemas, records
// them, and lets a test send offers and cancels or drop the connection. It also takes artifact
// uploads (PUT /agent/jobs/:id/artifacts/:name) and can fail them, and can go down altogether
// (its port closed) and come back on the same port, as a restarted Worker does.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import {
  type AgentToServer,
  AgentToServerSchema,
  type ExecutionSpec,
  PROTOCOL_VERSION,
  parseFrame,
  type ServerToAgent,
} from "../../protocol/index.ts";
import { MAX_FRAME_CHARS_AFTER_HELLO } from "../../src/agents/frame-budget.ts";

/** What a Worker takes in one WebSocket message, in bytes. */
const WORKER_WS_MESSAGE_BYTES = 1024 * 1024;

export const TOKEN = "skya_test_token_0123456789abcdef";

export class FakeRegistry {
  /** Every frame received, a batch's contents in their place (the batch itself is not kept). */
  readonly frames: AgentToServer[] = [];
  /** Each `batch` received: its job and the types of the frames it carried, in order. */
  readonly batches: { jobId: string; types: AgentToServer["type"][] }[] = [];
  /** WebSocket frames received (a batch counts once), keepalives excluded. */
  wireFrames = 0;
  readonly invalid: string[] = [];
  readonly authHeaders: (string | undefined)[] = [];
  connections = 0;
  pings = 0;
  /** When set, WebSocket upgrades are answered 503 (a server that is down for a while). */
  refuse = false;
  /** When set, the server stops answering anything (as a half-open connection looks). */
  silent = false;
  private socket: WebSocket | null = null;
  private waiters: (() => void)[] = [];
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  url = "";
  /** Drop log data instead of keeping it (big-output tests); bytes and a hash are still counted. */
  keepLogs = true;
  logBytes = 0;
  onLog?: (data: string) => void;
  /** Frames of an attempt below this (per job) are answered with stale_lease, as the registry does. */
  readonly staleBelow = new Map<string, number>();
  readonly staleReplies: { jobId: string; attempt: number; type: string }[] = [];
  /** Artifact uploads: every try, and what was stored. */
  readonly uploads: { jobId: string; name: string; attempt: number; status: number }[] = [];
  readonly stored = new Map<string, Buffer>();
  /** The next this-many uploads are answered 503. */
  uploadFailures = 0;
  /** When set, every upload is answered with this status (e.g. 403: the lease is over). */
  uploadStatus: number | undefined;
  private port = 0;
  private readonly sockets = new Set<Socket>();
  /** The TCP sockets of the WebSocket connections, for the bytes that came over them. */
  private readonly upgraded: Socket[] = [];
  /** Where it listens (another of this machine's addresses: a connection that is not loopback). */
  private readonly host: string;

  /** `deflate`: offer permessage-deflate, as the Workers runtime does. */
  constructor(opts: { deflate?: boolean; host?: string } = {}) {
    this.host = opts.host ?? "127.0.0.1";
    this.http = createServer((req, res) => {
      if (req.method === "PUT") return void this.upload(req, res);
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ ok: true, agentsOnline: this.socket ? 1 : 0 }));
    });
    this.http.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: opts.deflate ?? false });
    this.http.on("upgrade", (req: IncomingMessage, socket, head) => {
      this.authHeaders.push(req.headers.authorization);
      if (this.refuse) {
        socket.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      if (req.url !== "/agent/connect" || req.headers.authorization !== `Bearer ${TOKEN}`) {
        socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      this.upgraded.push(socket as Socket);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.http.listen(this.port, this.host, r));
    const addr = this.http.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
    this.url = `http://${this.host.includes(":") ? `[${this.host}]` : this.host}:${this.port}`;
    return this;
  }

  /** Bytes received over the WebSocket connections so far (compressed as they travelled). */
  get bytesIn(): number {
    return this.upgraded.reduce((n, s) => n + s.bytesRead, 0);
  }

  /** Closes the port and every connection (WebSocket and HTTP): connections are refused. */
  async down(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.socket = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  /** Listens again on the same port. */
  async up(): Promise<void> {
    await this.start();
  }

  private async upload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const m = /^\/agent\/jobs\/([^/]+)\/artifacts\/([^/]+)$/.exec(req.url ?? "");
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    const body = Buffer.concat(parts);
    const jobId = m?.[1] ?? "";
    const name = decodeURIComponent(m?.[2] ?? "");
    const attempt = Number(req.headers["x-skynet-attempt"]);
    let status = 201;
    if (!m || req.headers.authorization !== `Bearer ${TOKEN}`) status = 401;
    else if (this.uploadStatus !== undefined) status = this.uploadStatus;
    else if (this.uploadFailures > 0) {
      this.uploadFailures -= 1;
      status = 503;
    } else if (createHash("sha256").update(body).digest("hex") !== req.headers["x-skynet-sha256"]) status = 400;
    this.uploads.push({ jobId, name, attempt, status });
    if (status === 201) this.stored.set(`${jobId}/${name}`, body);
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(status === 201 ? { name } : { error: { code: String(status), message: "refused" } }));
  }

  private accept(ws: WebSocket): void {
    this.connections += 1;
    this.socket = ws;
    ws.on("message", (data, isBinary) => {
      // As the registry: a binary message is refused whatever it holds (a batch's bytes must go as text).
      if (isBinary) {
        this.invalid.push("binary frames are not part of the protocol");
        return;
      }
      if (data.toString() === "ping") {
        this.pings += 1;
        if (!this.silent) ws.send("pong");
        return;
      }
      if (this.silent) return; // a half-open connection: nothing comes back
      const text = data.toString();
      // The registry's cap on one frame (a batch included), and the Workers platform's on one
      // WebSocket message (1 MiB of bytes): over either, the socket is closed there.
      const bytes = Buffer.byteLength(text, "utf8");
      if (text.length > MAX_FRAME_CHARS_AFTER_HELLO || bytes > WORKER_WS_MESSAGE_BYTES) {
        this.invalid.push(`frame of ${text.length} characters (${bytes} bytes) is over the cap`);
        return;
      }
      const parsed = parseFrame(AgentToServerSchema, text);
      if (!parsed.ok) {
        this.invalid.push(parsed.error);
        return;
      }
      this.wireFrames += 1;
      const msg = parsed.message;
      if (msg.type === "batch") {
        this.batches.push({ jobId: msg.frames[0]?.jobId ?? "", types: msg.frames.map((f) => f.type) });
        // A batch is one attempt's: refused as a whole at its first frame when stale.
        if (!this.refusedAsStale(msg.frames[0] ?? msg)) for (const f of msg.frames) this.record(f);
        this.wake();
        return;
      }
      this.refusedAsStale(msg);
      this.record(msg);
      if (msg.type === "hello") {
        this.send({
          type: "welcome",
          agentId: "agent_test",
          protocolVersion: PROTOCOL_VERSION,
          heartbeatIntervalS: 1,
          leaseS: 30,
        });
      }
      this.wake();
    });
  }

  /** Answers stale_lease for an attempt below staleBelow; true when it did. */
  private refusedAsStale(msg: AgentToServer): boolean {
    if ("attempt" in msg && msg.attempt < (this.staleBelow.get(msg.jobId) ?? 0)) {
      this.staleReplies.push({ jobId: msg.jobId, attempt: msg.attempt, type: msg.type });
      this.send({
        type: "error",
        code: "stale_lease",
        message: `attempt ${msg.attempt} of ${msg.jobId} is no longer current`,
        jobId: msg.jobId,
        attempt: msg.attempt,
      });
      return true;
    }
    return false;
  }

  private record(msg: AgentToServer): void {
    if (msg.type === "log") {
      this.logBytes += Buffer.byteLength(msg.data);
      this.onLog?.(msg.data);
      if (!this.keepLogs) {
        this.frames.push({ ...msg, data: "" });
        return;
      }
    }
    this.frames.push(msg);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(msg: ServerToAgent): void {
    this.socket?.send(JSON.stringify(msg));
  }

  /** Sends any text, valid or not (to test how the agent treats bad frames). */
  sendText(text: string): void {
    this.socket?.send(text);
  }

  offer(
    spec: ExecutionSpec,
    leaseToken = "lease-token-0123456789abcdef",
    holder = "agent_test",
  ): { jobId: string; attempt: number; leaseToken: string } {
    const fence = { jobId: spec.jobId, attempt: spec.attempt, leaseToken };
    this.send({ type: "job_offer", ...fence, lease: { agentId: holder, expiresAt: Date.now() + 60_000 }, spec });
    return fence;
  }

  /** Closes the connection cleanly with a code, as the registry does on revoke or replace. */
  closeWith(code: number, reason: string): void {
    this.socket?.close(code, reason);
    this.socket = null;
  }

  /** Drops the connection abruptly (as a network failure would). */
  drop(): void {
    this.socket?.terminate();
    this.socket = null;
  }

  of<T extends AgentToServer["type"]>(type: T, jobId?: string): Extract<AgentToServer, { type: T }>[] {
    return this.frames.filter(
      (f): f is Extract<AgentToServer, { type: T }> =>
        f.type === type && (jobId === undefined || ("jobId" in f && f.jobId === jobId)),
    );
  }

  async waitFor<T extends AgentToServer["type"]>(
    type: T,
    pred: (f: Extract<AgentToServer, { type: T }>) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<Extract<AgentToServer, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.of(type).find(pred);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${type}; got ${this.frames.map((f) => f.type).join(",")}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  logText(jobId: string): string {
    return this.of("log", jobId)
      .sort((a, b) => a.seq - b.seq)
      .map((f) => f.data)
      .join("");
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    for (const s of this.sockets) s.destroy();
    this.wss.close();
    await new Promise<void>((r) => this.http.close(() => r()));
  }
}

let counter = 0;
export function spec(steps: ExecutionSpec["steps"], projectId = "default"): ExecutionSpec {
  counter += 1;
  return {
    jobId: `job_test${String(Date.now()).slice(-8)}${String(counter).padStart(4, "0")}`,
    attempt: 1,
    provider: "openclaw",
    projectId,
    steps,
    timeoutS: 600,
  };
}
