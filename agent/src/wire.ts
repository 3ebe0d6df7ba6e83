// What goes out on the agent's current socket, and what proves it arrived. One socket is one
// ordered stream: a keepalive ("ping") whose answer ("pong", the registry's auto-response) came
// back proves that every frame sent before it was received. Job frames wait a few ms in the
// FrameBatcher; anything else sent after them (a frame of another kind, a keepalive) flushes them
// first, so that proof covers them too. Above HIGH_WATER buffered bytes, producers wait.
// Messages are compressed (as negotiated) except on a loopback connection, where compression is
// only CPU spent on both ends for bytes that cost nothing to move.
import { BlockList, isIP } from "node:net";
import { type AgentToServer, type ExecutionSpec, type FencedAgentMessage, writes } from "../../protocol/index.ts";
import { type BatchTuning, FrameBatcher } from "./frame-batcher.ts";
import { WebSocket } from "./ws.ts";

/** Above this many buffered bytes on the socket, output is paused (backpressure). */
const HIGH_WATER = 1024 * 1024;

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** Whether a peer address is this machine's loopback (127.0.0.0/8, ::1, IPv4-mapped 127.x too). */
export function isLoopback(address: string | undefined): boolean {
  const family = address ? isIP(address) : 0;
  return family !== 0 && LOOPBACK.check(address as string, family === 4 ? "ipv4" : "ipv6");
}

/** Where a frame went out: the connection and the keepalives sent on it before. */
export interface Receipt {
  conn: number;
  pings: number;
  at: number;
}

export class Wire {
  private ws: WebSocket | null = null;
  /** Connection number (one per socket) and its keepalive counts, for delivery proofs. */
  private conn = 0;
  private pingsSent = 0;
  private pongsHeard = 0;
  /** The server answered this socket's hello: frames about jobs may go. */
  welcomed = false;
  private writableWaiters: (() => void)[] = [];
  private pongWaiters: (() => void)[] = [];
  /** Job frames waiting a few ms to travel together; flushed before anything sent after them. */
  readonly batcher: FrameBatcher;
  /** Whether messages on this socket are compressed: not on a loopback connection. */
  private compress = true;

  constructor(batch: Partial<BatchTuning> = {}) {
    this.batcher = new FrameBatcher((text, done) => {
      const ws = this.ws;
      // A batch comes as UTF-8 bytes: still a text message.
      if (ws?.readyState === WebSocket.OPEN)
        ws.send(text, { binary: false, compress: this.compress }, (err) => {
          this.releaseWriters();
          done?.(err);
        });
    }, batch);
  }

  /** A new socket: the keepalive counts start again, and nothing is welcomed yet. */
  attach(ws: WebSocket): void {
    this.ws = ws;
    this.welcomed = false;
    this.compress = true;
    this.conn += 1;
    this.pingsSent = 0;
    this.pongsHeard = 0;
  }

  /** The socket closed: what waits in a batch is dropped (the jobs' journals replay it). */
  detach(): void {
    this.welcomed = false;
    this.batcher.drop();
    this.releaseWriters();
  }

  /** Lets go of the socket for good (the agent stops) and hands it back to be closed. */
  release(): WebSocket | null {
    const ws = this.ws;
    this.ws = null;
    return ws;
  }

  /** Drops a socket that went silent (half-open); its close event brings the reconnect. */
  terminate(): void {
    this.ws?.terminate();
  }

  /** Whether `ws` is still the socket frames go on (events of an older one are ignored). */
  isCurrent(ws: WebSocket): boolean {
    return this.ws === ws;
  }

  /** Where `ws` connected to (its upgrade's peer): messages to this machine go uncompressed. */
  connectedTo(ws: WebSocket, address: string | undefined): void {
    if (this.ws === ws) this.compress = !isLoopback(address);
  }

  /** Which connection this is (one number per socket). */
  get connNumber(): number {
    return this.conn;
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  get connected(): boolean {
    return this.welcomed && this.open;
  }

  send(msg: AgentToServer): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    this.batcher.flush();
    ws.send(JSON.stringify(msg), { compress: this.compress }, () => this.releaseWriters());
    return true;
  }

  /**
   * A job frame, gathered with the attempt's next ones for a few ms. The result goes at once,
   * and so does the start of a step that writes: it waits for the server's confirmation. An
   * accept leads its attempt's first batch, so a short job costs the server one call; it waits
   * no longer than the linger (plus a journal write), far inside the server's accept deadline.
   */
  sendJobFrame(spec: ExecutionSpec, msg: FencedAgentMessage): boolean {
    if (!this.open) return false;
    if (msg.type === "job_reject") return this.send(msg);
    const step = msg.type === "step_started" ? spec.steps.find((s) => s.id === msg.stepId) : undefined;
    const now = msg.type === "job_finished" || (!!step && writes(step.risk));
    this.batcher.add(msg, now);
    return true;
  }

  /** A keepalive: its answer proves that everything sent before it arrived, batched frames included. */
  ping(): void {
    const ws = this.ws;
    if (ws?.readyState !== WebSocket.OPEN) return;
    this.batcher.flush();
    ws.send("ping");
    this.pingsSent += 1;
  }

  /** The answer to a keepalive arrived. */
  heardPong(): void {
    this.pongsHeard += 1;
    for (const w of this.pongWaiters.splice(0)) w();
  }

  /** Notes where a frame just sent went out, for proves() later. */
  receipt(): Receipt {
    return { conn: this.conn, pings: this.pingsSent, at: Date.now() };
  }

  /** A keepalive sent after the receipt's frame on the same, still welcomed, connection was
   * answered. A half-open connection, where frames vanish silently, never proves anything. */
  proves(r: Receipt): boolean {
    return this.connected && r.conn === this.conn && this.pongsHeard > r.pings;
  }

  /**
   * Resolves once the server surely has every frame sent so far: a keepalive sent after them on
   * a welcomed connection was answered (after a reconnect the replay resent them first). Across
   * an outage it waits; once `over()` it returns at once.
   */
  async confirmed(over: () => boolean): Promise<void> {
    // The keepalive this wait sent, on which connection (none yet: conn -1).
    const asked = { conn: -1, ping: 0 };
    for (;;) {
      if (over()) return;
      if (this.connected) {
        if (asked.conn === this.conn && this.pongsHeard >= asked.ping) return;
        if (asked.conn !== this.conn) {
          this.ping();
          asked.conn = this.conn;
          asked.ping = this.pingsSent;
        }
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.pongWaiters = this.pongWaiters.filter((w) => w !== done);
          resolve();
        };
        const timer = setTimeout(done, 100);
        this.pongWaiters.push(done);
      });
    }
  }

  /** Connected, with room in the socket's buffer for more. */
  get roomy(): boolean {
    return this.connected && (this.ws?.bufferedAmount ?? 0) <= HIGH_WATER;
  }

  /** Resolves when the buffer drained below HIGH_WATER or the connection changed (at most 100 ms). */
  drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.writableWaiters.push(resolve);
      setTimeout(resolve, 100).unref();
    });
  }

  releaseWriters(): void {
    if (this.ws && this.ws.bufferedAmount > HIGH_WATER && this.connected) return;
    for (const w of this.writableWaiters.splice(0)) w();
  }
}
