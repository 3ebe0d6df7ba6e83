// Agent configuration: a JSON file (written by `pair`), flags and environment, validated by zod.
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { describeIssues, ProjectIdSchema } from "../../protocol/index.ts";
import { err, ok, type Result } from "../../protocol/result.ts";
import { UsageError } from "./usage.ts";

export const DEFAULT_CONFIG_PATH =
  process.env.SKYNET_AGENT_CONFIG ?? join(homedir(), ".config", "skynet", "agent.json");

const ServerUrlSchema = z
  .url({ protocol: /^https?$/, error: "the server URL must be http(s)://host[:port]" })
  .transform((u) => u.replace(/\/+$/, ""));

/** A workspace-relative glob for secret files (see secrets.ts for the syntax). */
const PathGlobSchema = z
  .string()
  .min(1)
  .max(200)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  .refine((g) => !/[\u0000-\u001f\u007f]/.test(g), "a path glob may not contain control characters");

/** Extra deny and allow globs for secret files, per project id ("*": every workspace). */
export const PathPolicySchema = z.record(
  z.union([ProjectIdSchema, z.literal("*")]),
  z.strictObject({
    deny: z.array(PathGlobSchema).max(100).default([]),
    allow: z.array(PathGlobSchema).max(100).default([]),
  }),
);
export type PathPolicies = z.infer<typeof PathPolicySchema>;

// Strict: a misspelt key ("secretPath") is an error that names it, never a setting silently ignored.
export const StoredConfigSchema = z.strictObject({
  serverUrl: ServerUrlSchema,
  agentId: z.string().min(1).optional(),
  token: z.string().min(16, "the agent token looks truncated"),
  name: z.string().min(1).max(100).optional(),
  secretPaths: PathPolicySchema.optional(),
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
  /** Secret-file globs beyond the defaults (and allow-globs that lift them). */
  secretPaths: PathPolicySchema.optional(),
  /** The config file holding the token: never readable by any action, wherever it is. */
  configPath: z.string().min(1).optional(),
  /** Where finished results wait for proof of delivery (result-journal.ts); default: next to the
   * config file, or SKYNET_AGENT_STATE_DIR. Without either (an agent built in a test), none. */
  stateDir: z.string().min(1).optional(),
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

/** The agent's state directory: explicit, from the environment, or "agent-state" beside the config file. */
export function stateDirOf(config: AgentConfig): string | null {
  const dir = config.stateDir ?? process.env.SKYNET_AGENT_STATE_DIR;
  if (dir) return resolve(dir);
  return config.configPath ? join(dirname(config.configPath), "agent-state") : null;
}

/** The config file: null when there is none; an error naming the file and the bad key otherwise. */
export async function loadStoredConfig(path: string): Promise<Result<StoredConfig | null>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if (e instanceof Error && "code" in e && e.code === "ENOENT") return ok(null);
    return err(`${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return err(`${path} is not valid JSON`);
  }
  const parsed = StoredConfigSchema.safeParse(json);
  if (!parsed.success) return err(`${path}: ${describeIssues(parsed.error, { max: 20 })}`);
  return ok(parsed.data);
}

/** loadStoredConfig for the commands: a bad config file is the user's to fix (a usage error, exit 2). */
export async function readStoredConfig(path: string): Promise<StoredConfig | null> {
  const loaded = await loadStoredConfig(path);
  if (!loaded.ok) throw new UsageError(loaded.error);
  return loaded.value;
}

export async function writeStoredConfig(path: string, config: StoredConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** Parses "[projectId=]glob" flags into per-project deny or allow lists ("*" without a project). */
export function parsePathFlags(deny: string[], allow: string[], base: PathPolicies = {}): PathPolicies {
  const out: PathPolicies = structuredClone(base);
  const add = (value: string, kind: "deny" | "allow") => {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})=(.+)$/.exec(value);
    const [id, glob] = m ? [m[1] as string, m[2] as string] : ["*", value];
    out[id] ??= { deny: [], allow: [] };
    out[id][kind].push(glob);
  };
  for (const v of deny) add(v, "deny");
  for (const v of allow) add(v, "allow");
  return out;
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

/** The secret-path globs for one project: its own plus those for every workspace ("*"). */
export function pathPolicyFor(config: AgentConfig, projectId: string): { deny: string[]; allow: string[] } {
  const all = config.secretPaths?.["*"];
  const own = config.secretPaths?.[projectId];
  return { deny: [...(all?.deny ?? []), ...(own?.deny ?? [])], allow: [...(all?.allow ?? []), ...(own?.allow ?? [])] };
}
