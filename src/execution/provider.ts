// What an execution provider is: it hands an execution spec to whatever runs it, cancels it,
// and reports its health. The engine (engine.ts) routes each spec to one by name.
import type { ExecutionSpec } from "../../protocol/index.ts";

export type ExecuteOutcome = "offered" | "pending";

export interface ProviderHealth {
  ok: boolean;
  detail: string;
  agentsOnline: number;
}

export interface ExecutionProvider {
  readonly name: string;
  execute(spec: ExecutionSpec, leaseToken: string): Promise<ExecuteOutcome>;
  cancel(jobId: string, attempt: number, reason: string): Promise<void>;
  health(): Promise<ProviderHealth>;
}
