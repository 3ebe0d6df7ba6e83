// The one AgentRegistryDO of a deployment (shardable by project later).
export function registryStub(env: Env) {
  return env.AGENT_REGISTRY.get(env.AGENT_REGISTRY.idFromName("global"));
}

export function jobStub(env: Env, jobId: string) {
  return env.JOB.get(env.JOB.idFromName(jobId));
}
