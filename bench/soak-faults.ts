// Faults for the soak (bench/soak.ts): a loopback TCP proxy in front of the Worker, one per
// agent, that can cut that agent's network for a while, either by resetting every connection
// (refusing new ones until it heals) or by black-holing them (bytes stop in both directions and
// new connections hang; on healing the held bytes flow again, as after a real partition).
import { createServer, type Socket } from "node:net";
import { listenLoopback, splice } from "../test/helpers/node/tcp-proxy.ts";

export type CutMode = "reset" | "blackhole";

export interface FaultProxy {
  url: string;
  port: number;
  /** Cuts the network for ms, then heals it. */
  cut(ms: number, mode: CutMode): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  const pairs = new Set<Pair>();
  const held: Socket[] = [];
  let down: CutMode | null = null;

  const link = (client: Socket) => {
    const upstream = splice(client, targetPort, "127.0.0.1", () => pairs.delete(pair));
    const pair = { client, upstream };
    pairs.add(pair);
  };

  const server = createServer((client) => {
    if (down === "reset") return void client.destroy();
    if (down === "blackhole") {
      client.pause();
      client.on("error", () => client.destroy());
      held.push(client);
      return;
    }
    link(client);
  });
  const port = await listenLoopback(server);

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async cut(ms, mode) {
      down = mode;
      for (const p of pairs) {
        if (mode === "reset") {
          p.client.destroy();
          p.upstream.destroy();
        } else {
          p.client.unpipe(p.upstream);
          p.upstream.unpipe(p.client);
          p.client.pause();
          p.upstream.pause();
        }
      }
      if (mode === "reset") pairs.clear();
      await new Promise((r) => setTimeout(r, ms));
      down = null;
      for (const p of pairs) {
        p.client.pipe(p.upstream);
        p.upstream.pipe(p.client);
        p.client.resume();
        p.upstream.resume();
      }
      for (const c of held.splice(0)) {
        if (c.destroyed) continue;
        link(c);
        c.resume();
      }
    },
    close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      for (const c of held.splice(0)) c.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
