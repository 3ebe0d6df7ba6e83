// An in-process agent for the agent's own tests: the real Agent class against the fake registry,
// with one workspace and reconnect timings short enough for a test to see several attempts.
import { waitFor } from "../../test/helpers/node/wait.ts";
import { Agent, type AgentTuning } from "../src/agent.ts";
import type { AgentConfig } from "../src/config.ts";
import { TOKEN } from "./fake-registry.ts";

export function testConfig(serverUrl: string, workspace: string, over: Partial<AgentConfig> = {}): AgentConfig {
  return {
    serverUrl,
    token: TOKEN,
    name: "test-agent",
    workspaces: { default: workspace },
    allowShell: false,
    maxConcurrency: 2,
    cancelGraceMs: 500,
    outputCapBytes: 10 * 1024 * 1024,
    reconnectBaseMs: 50,
    reconnectMaxMs: 400,
    ...over,
  };
}

/**
 * Starts the agent, adds it to `agents` (the test file stops them all after each test), and waits
 * until the registry has welcomed it; what it logs goes to `lines`.
 */
export async function startTestAgent(
  config: AgentConfig,
  into: { lines: string[]; agents: Agent[] },
  tuning: Partial<AgentTuning> = {},
): Promise<Agent> {
  const agent = new Agent(config, { log: (l) => into.lines.push(l) }, tuning);
  into.agents.push(agent);
  agent.start();
  await waitFor(() => agent.connected, { what: "the agent to be welcomed" });
  return agent;
}
