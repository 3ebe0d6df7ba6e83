// Agent configuration: a JSON file (written by `pair`), flags and environment, validated by zod.
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { ProjectIdSchema } from "../../protocol/index.ts";

export const DEFAULT_CONFIG_PATH =
  process.env.SKYNET_AGENT_CONFIG ?? join(homedir(), ".config", "skynet", "agent.json");

const ServerUrlSchema = z
  .url({ protocol: /^https?$/, error: "the server URL must be http(s)://host[:port]" })
  .transform((u) => u.replace(/\/+$/, ""));

export const StoredConfigSchema = z.object({
  serverUrl: ServerUrlSchema,
  agentId: z.string().min(1).optional(),
  token: z.string().min(16, "the agent token looks truncated"),
  name: z.string().min(1).max(100).optional(),
});
export type StoredConfig = z.infer<typeof StoredConfigSchema>;

export const AgentConfigSchema = z.object({
  serverUrl: ServerUrlSchema,
  token: z.string().min(16, "the agent token looks truncated"),
  name: z.string().trim().min(1).max(100),
  workspaces: z
    .record(ProjectIdSchema, z.string().min(1))
    .refine((w) => Object.keys(w).length > 0, "give at least one --workspace <projectId>=<dir>"),
  allowShell: z.boolean(),
  maxConcurrency: z.number().int().min(1).max(16),
  cancelGraceMs: z.number().int().min(0).max(600_000),
  outputCapBytes: z
    .number()
    .int()
    .min(1024)
    .max(1024 * 1024 * 1024),
  reconnectBaseMs: z.number().int().min(10).max(60_000),
  reconnectMaxMs: z.number().int().min(100).max(600_000),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export const DEFAULTS = {
  maxConcurrency: 2,
  cancelGraceMs: 10_000,
  outputCapBytes: 1024 * 1024 * 1024,
  // The first retry after a healthy connection comes within 125–250 ms; the cap keeps a 2 s blip
  // well inside the server's reconnect grace (RECONNECT_GRACE_SECONDS, 30 s; 5 s in e2e tests).
  reconnectBaseMs: 250,
  reconnectMaxMs: 2_500,
};

export async function readStoredConfig(path: string): Promise<StoredConfig | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return null;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
  const parsed = StoredConfigSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${path}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  return parsed.data;
}

export async function writeStoredConfig(path: string, config: StoredConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** Parses "projectId=dir" pairs; a bare dir means project "default". */
export function parseWorkspaces(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    const [id, dir] = eq > 0 ? [v.slice(0, eq), v.slice(eq + 1)] : ["default", v];
    // "~" is not expanded by the shell after "id=", so it is done here.
    out[id] = resolve(dir === "~" || dir.startsWith("~/") ? join(homedir(), dir.slice(1)) : dir);
  }
  return out;
}
