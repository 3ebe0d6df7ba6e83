// The agent's one connection to the server, kept up: it dials out, says hello, expects a welcome
// within WELCOME_TIMEOUT_MS, keeps the connection alive (heartbeats that renew leases, plain
// keepalives between them, a reconnect when the server goes silent), and after a drop reconnects
// with a jittered, growing backoff (backoff.ts) — unless the server ended this agent for good.
// What is sent on the socket, and how delivery is proven, is wire.ts's.
import {
  type AgentToServer,
  parseFrame,
  type ServerMessageOf,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../protocol/index.ts";
import { retryDelay } from "./backoff.ts";
import type { AgentConfig } from "./config.ts";
import type { RunningRef } from "./job-book.ts";
import type { LogLevel } from "./logger.ts";
import { unreadableOffer } from "./offers.ts";
import type { Wire } from "./wire.ts";
import { WebSocket } from "./ws.ts";

export const AGENT_VERSION = "0.1.0";

const WELCOME_TIMEOUT_MS = 10_000;

/** Close codes after which reconnecting cannot help: replaced, revoked, protocol mismatch. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([4000, 4001, 4003]);

export interface ConnectionHooks {
  say(line: string, level?: LogLevel): void;
  /** The server ended this agent for good (replaced, revoked, protocol mismatch). */
  onFatal(code: number): void;
  /** The protocol version claimed in hello (PROTOCOL_VERSION but in tests of an outdated agent). */
  protocolVersion: number;
  /** A frame from the server that parsed. */
  onFrame(msg: ServerToAgent): void;
  /** The attempts running here, as each heartbeat reports them (it renews their leases). */
  running(): RunningRef[];
}

export class Connection {
  private readonly config: AgentConfig;
  private readonly wire: Wire;
  private readonly hooks: ConnectionHooks;
  private heartbeat: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** The current connection was welcomed and has answered a keepalive since. */
  private healthy = false;
  private halted = false;
  /** When the server last sent anything (a frame or a pong). */
  private lastHeard = 0;
  agentId: string | null = null;

  constructor(config: AgentConfig, wire: Wire, hooks: ConnectionHooks) {
    this.config = config;
    this.wire = wire;
    this.hooks = hooks;
  }

  /** Stopped by the agent, or ended for good by the server: no reconnecting. */
  get stopped(): boolean {
    return this.halted;
  }

  /** Connects, once `ready` settles if given (unless stopped meanwhile). */
  start(ready?: Promise<unknown>): void {
    this.halted = false;
    if (!ready) {
      this.connect();
      return;
    }
    const go = () => {
      if (!this.halted) this.connect();
    };
    void ready.then(go, go);
  }

  private connect(): void {
    const { say } = this.hooks;
    const url = `${this.config.serverUrl.replace(/^http/, "ws")}/agent/connect`;
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${this.config.token}` },
      handshakeTimeout: 15_000,
      // Compressed as negotiated (not on loopback: see Wire), at zlib's fastest level: log-like
      // text deflates ≈ 3× faster than at the default level 6 and ends ≈ 0.28 of its size rather
      // than ≈ 0.23 (bench/lib/log-text.ts); at level 6 the compression alone held a log below
      // 50 MB/s on this machine.
      perMessageDeflate: { zlibDeflateOptions: { level: 1 } },
    });
    this.wire.attach(ws);
    ws.once("upgrade", (res) => this.wire.connectedTo(ws, res.socket.remoteAddress));
    ws.on("open", () => {
      say(`connected to ${this.config.serverUrl}`);
      // A server that takes the socket but never answers the hello is as good as unreachable.
      const unwelcomed = setTimeout(() => {
        if (!this.wire.isCurrent(ws) || this.wire.welcomed) return;
        say(`no welcome within ${WELCOME_TIMEOUT_MS / 1000}s; reconnecting`);
        ws.terminate();
      }, WELCOME_TIMEOUT_MS);
      unwelcomed.unref();
      ws.once("close", () => clearTimeout(unwelcomed));
      this.wire.send(this.hello());
    });
    ws.on("message", (data, isBinary) => {
      this.lastHeard = Date.now();
      if (isBinary) return;
      const text = data.toString();
      if (text === "pong") {
        // The registry's auto-response to our keepalive: everything sent before it arrived.
        if (this.wire.welcomed) this.healthy = true;
        this.wire.heardPong();
        return;
      }
      const parsed = parseFrame(ServerToAgentSchema, text);
      if (parsed.ok) {
        this.hooks.onFrame(parsed.message);
        return;
      }
      // An offer we cannot read is still answered, so the server need not wait for a timeout.
      const reject = unreadableOffer(text, parsed.error);
      if (reject) {
        say(`job ${reject.jobId} rejected: ${parsed.error}`);
        this.wire.send(reject);
        return;
      }
      say(`ignored a bad frame from the server: ${parsed.error}`, "warn");
    });
    ws.on("unexpected-response", (_req, res) => {
      if (res.statusCode === 401) {
        // An unknown or revoked token will not start working by retrying.
        say("the server refused this agent's token (revoked or unknown); pair again with `skynet-agent pair`", "error");
        this.halted = true;
        ws.terminate();
        this.hooks.onFatal(4001);
        return;
      }
      say(`the server answered ${res.statusCode} to the WebSocket upgrade`, "warn");
      ws.terminate();
    });
    ws.on("error", (err) => {
      if (this.failures === 0) say(`connection error: ${err.message}`, "warn");
    });
    ws.on("close", (code, reason) => this.closed(ws, code, reason.toString()));
  }

  private hello(): AgentToServer {
    const { config } = this;
    return {
      type: "hello",
      protocolVersion: this.hooks.protocolVersion,
      agentName: config.name,
      agentVersion: AGENT_VERSION,
      capabilities: ["git", "fs", "runner", "code", ...(config.allowShell ? (["shell"] as const) : [])],
      workspaces: Object.keys(config.workspaces),
      maxConcurrency: config.maxConcurrency,
      allowShell: config.allowShell,
    };
  }

  private closed(ws: WebSocket, code: number, reason: string): void {
    if (!this.wire.isCurrent(ws)) return;
    // After a connection the server accepted and answered, the backoff starts small again; a
    // server that drops each connection at once keeps growing it.
    if (this.healthy) this.failures = 0;
    this.healthy = false;
    clearInterval(this.heartbeat);
    this.wire.detach();
    if (this.halted) return;
    // The server closes with 4000 when another process connects with this token (reconnecting
    // would just kick it off in turn), 4001 when the token was revoked and 4003 when it speaks
    // another protocol version: all final.
    if (FINAL_CLOSE_CODES.has(code)) {
      this.hooks.say(
        code === 4000
          ? "another agent process connected with this token; stopping this one"
          : code === 4001
            ? "this agent's token was revoked; pair again with `skynet-agent pair <server> <code>`"
            : `the server speaks another protocol version (${reason || "mismatch"}); upgrade the agent: npm install -g skynet-agent@latest (or npx skynet-agent@latest)`,
        "error",
      );
      this.halted = true;
      this.hooks.onFatal(code);
      return;
    }
    const delay = retryDelay(this.failures, this.config.reconnectBaseMs, this.config.reconnectMaxMs);
    this.failures = Math.min(this.failures + 1, 30);
    this.hooks.say(
      `disconnected (${code}${reason.length ? ` ${reason}` : ""}); reconnecting in ${(delay / 1000).toFixed(2)}s`,
    );
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** The server accepted the hello: the connection is registered and kept alive from now on. */
  welcome(msg: ServerMessageOf<"welcome">): void {
    this.agentId = msg.agentId;
    this.wire.welcomed = true;
    this.hooks.say(`registered as ${msg.agentId}; serving ${Object.keys(this.config.workspaces).join(", ")}`);
    clearInterval(this.heartbeat);
    // Heartbeats renew leases (they wake the registry); between them a plain "ping" is answered
    // by the registry's auto-response without waking it. Hearing nothing for three heartbeat
    // intervals means a half-open connection: drop it and reconnect.
    const intervalMs = msg.heartbeatIntervalS * 1000;
    const keepaliveMs = Math.max(500, Math.floor(intervalMs / 3));
    let ticks = 0;
    const conn = this.wire.connNumber;
    this.lastHeard = Date.now();
    this.heartbeat = setInterval(() => {
      ticks += 1;
      if (Date.now() - this.lastHeard > 3 * intervalMs) {
        this.hooks.say("no word from the server for three heartbeats; reconnecting");
        this.wire.terminate();
        return;
      }
      if (ticks % 3 === 0) this.wire.send({ type: "heartbeat", running: this.hooks.running() });
      else if (this.wire.connNumber === conn) this.wire.ping();
    }, keepaliveMs);
    this.heartbeat.unref();
  }

  /** Stops for good and closes the socket, waiting for the server's side of the close. */
  async close(): Promise<void> {
    this.halted = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.reconnectTimer);
    const ws = this.wire.release();
    // The close handshake comes after every queued frame (job_finished included): waiting for it
    // means the server has them before the process exits.
    if (ws?.readyState !== WebSocket.OPEN) {
      ws?.close(1000, "agent stopping");
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.hooks.say("the server did not answer the close within 5 s: its last frames may not have arrived", "warn");
        resolve();
      }, 5000);
      ws.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      ws.close(1000, "agent stopping");
    });
  }
}
