// The one AgentRegistryDO of a deployment (shardable by project later).
export function registryStub(env: Env) {
  return env.AGENT_REGISTRY.getByName("global");
}

export function jobStub(env: Env, jobId: string) {
  return env.JOB.getByName(jobId);
}
