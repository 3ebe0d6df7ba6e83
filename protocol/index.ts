// The shared protocol barrel: imported by the Worker, the agent, tests and scripts.
export * from "./actions.ts";
export * from "./agent-messages.ts";
export * from "./api.ts";
export * from "./coder.ts";
export * from "./html.ts";
export * from "./issues.ts";
export * from "./jobs.ts";
export * from "./result.ts";
export * from "./risk.ts";
