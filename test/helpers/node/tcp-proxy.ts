// A loopback TCP proxy whose connections a test can cut, to drop an agent's WebSocket while the
// agent process keeps running (a real network fault, not a mock), or freeze: open connections
// stay open but carry nothing (a half-open link) and new ones are refused, until thawed.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  url: string;
  port: number;
  /** Destroys every open connection (both directions); new ones are still accepted. */
  dropAll(): number;
  /** Open connections stop carrying data (neither side notices); new ones are refused. */
  freeze(): number;
  /** New connections are accepted again (frozen ones stay frozen until their ends close them). */
  thaw(): void;
  close(): Promise<void>;
}

/**
 * Joins a client connection to a new connection to the target, both ways; an error or close on
 * either end closes both and then calls `ended`. Returns the connection to the target.
 */
export function splice(client: Socket, targetPort: number, targetHost: string, ended: () => void): Socket {
  const upstream = connect(targetPort, targetHost);
  const end = () => {
    client.destroy();
    upstream.destroy();
    ended();
  };
  client.on("error", end).on("close", end);
  upstream.on("error", end).on("close", end);
  client.pipe(upstream);
  upstream.pipe(client);
  return upstream;
}

/** Listens on a free loopback port and returns it. */
export async function listenLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return typeof address === "object" && address ? address.port : 0;
}

export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  const server = createServer((client) => {
    if (frozen) {
      client.destroy();
      return;
    }
    const upstream = splice(client, targetPort, targetHost, () => pairs.delete(pair));
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
  });
  const port = await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dropAll() {
      const n = pairs.size;
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      return n;
    },
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        // Read and drop what arrives, so nothing is delivered and nobody sees an error.
        a.on("data", () => undefined);
        b.on("data", () => undefined);
      }
      return pairs.size;
    },
    thaw() {
      frozen = false;
    },
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
