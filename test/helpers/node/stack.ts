// SKYNET running end to end for one test file: wrangler dev and one real agent process, paired
// through the real endpoints, serving a temporary git repository; stop() ends all three.
import { type AgentOptions, type AgentProcess, startPairedAgent } from "./agent-process.ts";
import type { ApiClient } from "./api-client.ts";
import type { GitRepo } from "./git-repo.ts";
import { type RunningWorker, startWorker, type WorkerOptions } from "./wrangler-dev.ts";

export interface Stack {
  worker: RunningWorker;
  client: ApiClient;
  agent: AgentProcess;
  /** Stops the agent and the Worker and removes the repository. */
  stop(): Promise<void>;
}

/**
 * Takes over `repo` (removed by stop(), or at once when the start fails, so that a failed
 * beforeAll leaves nothing behind).
 */
export async function startStack(
  repo: GitRepo,
  pairName: string,
  opts: { worker?: WorkerOptions; agent?: Omit<AgentOptions, "url" | "token" | "workspace"> } = {},
): Promise<Stack> {
  let worker: RunningWorker | undefined;
  try {
    worker = await startWorker(opts.worker);
    const { client, agent } = await startPairedAgent(worker, pairName, { ...opts.agent, workspace: repo.dir });
    const running = worker;
    return {
      worker: running,
      client,
      agent,
      async stop() {
        await agent.stop();
        await running.stop();
        await repo.cleanup();
      },
    };
  } catch (e) {
    await worker?.stop();
    await repo.cleanup();
    throw e;
  }
}
