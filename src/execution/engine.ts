// ExecutionEngine: routes an execution spec to its provider (docs/design.md §2). Today there is one
// provider, `openclaw` (the agent registry); more can be registered by name.
import type { ExecutionSpec } from "../../protocol/index.ts";
import type { ExecuteOutcome, ExecutionProvider, ProviderHealth } from "./provider.ts";
import { OpenClawProvider } from "./providers/openclaw.ts";

export class ExecutionEngine {
  private readonly providers = new Map<string, ExecutionProvider>();

  register(provider: ExecutionProvider): this {
    this.providers.set(provider.name, provider);
    return this;
  }

  private provider(name: string): ExecutionProvider {
    const p = this.providers.get(name);
    if (!p) throw new Error(`provider "${name}" is not registered`);
    return p;
  }

  execute(spec: ExecutionSpec, leaseToken: string): Promise<ExecuteOutcome> {
    return this.provider(spec.provider).execute(spec, leaseToken);
  }

  async cancel(jobId: string, attempt: number, reason: string, providerName = "openclaw"): Promise<void> {
    await this.provider(providerName).cancel(jobId, attempt, reason);
  }

  /** Health of every provider with the time each check took (for the provider monitor). */
  async checkAll(): Promise<{ name: string; health: ProviderHealth; latencyMs: number }[]> {
    const out: { name: string; health: ProviderHealth; latencyMs: number }[] = [];
    for (const [name, p] of this.providers) {
      const started = Date.now();
      let health: ProviderHealth;
      try {
        health = await p.health();
      } catch (err) {
        health = { ok: false, detail: err instanceof Error ? err.message : String(err), agentsOnline: 0 };
      }
      out.push({ name, health, latencyMs: Date.now() - started });
    }
    return out;
  }
}

export function getEngine(env: Env): ExecutionEngine {
  return new ExecutionEngine().register(new OpenClawProvider(env));
}
