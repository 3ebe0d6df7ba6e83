// The `openclaw` provider: hands jobs to laptop agents through the AgentRegistryDO.
import type { ExecutionSpec } from "../../../protocol/index.ts";
import { registryStub } from "../../agents/registry-stub.ts";
import type { ExecuteOutcome, ExecutionProvider, ProviderHealth } from "../provider.ts";

export class OpenClawProvider implements ExecutionProvider {
  readonly name = "openclaw";
  private readonly env: Env;

  constructor(env: Env) {
    this.env = env;
  }

  execute(spec: ExecutionSpec, leaseToken: string): Promise<ExecuteOutcome> {
    return registryStub(this.env).assign(spec, leaseToken);
  }

  async cancel(jobId: string, attempt: number, reason: string): Promise<void> {
    await registryStub(this.env).cancel(jobId, attempt, reason);
  }

  async health(): Promise<ProviderHealth> {
    const agents = await registryStub(this.env).listAgents();
    const online = agents.length;
    return { ok: true, detail: online > 0 ? `${online} agent(s) online` : "no agent online", agentsOnline: online };
  }
}
