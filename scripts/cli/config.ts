// Where the CLI finds the server URL and the API token, in this order (first found wins, each
// looked up on its own): --url/--token, SKYNET_URL/SKYNET_API_TOKEN, the config file
// ($SKYNET_CONFIG, else $XDG_CONFIG_HOME/skynet/cli.json, else ~/.config/skynet/cli.json),
// API_TOKEN in ./.dev.vars, and for the URL http://127.0.0.1:8787. The source is kept so that
// an error can say which token was refused.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { UsageError } from "./errors.ts";

export const DEFAULT_URL = "http://127.0.0.1:8787";

const ConfigFileSchema = z.strictObject({
  url: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
});

export interface Setting {
  value: string;
  /** Where the value came from, as a person would look for it ("SKYNET_URL", "--url", a path). */
  source: string;
}

export interface Connection {
  url: Setting;
  token: Setting | null;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SKYNET_CONFIG) return env.SKYNET_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "skynet", "cli.json");
}

function readConfigFile(path: string): z.infer<typeof ConfigFileSchema> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UsageError(`cannot read the config file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`the config file ${path} is not JSON; it holds {"url": "…", "token": "…"}`);
  }
  const parsed = ConfigFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new UsageError(
      `the config file ${path} may hold only "url" and "token" (strings): ${parsed.error.issues[0]?.message}`,
    );
  }
  return parsed.data;
}

function devVarsToken(cwd: string): string | undefined {
  try {
    const m = /^API_TOKEN=(.*)$/m.exec(readFileSync(join(cwd, ".dev.vars"), "utf8"));
    return m?.[1]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Checks the URL's form; a URL without a scheme would otherwise fail as "cannot reach". */
export function checkUrl(url: Setting): string {
  const value = url.value.replace(/\/+$/, "");
  if (!/^https?:\/\//i.test(value)) {
    throw new UsageError(
      `cannot reach ${value} (from ${url.source}): the URL must start with http:// or https://, e.g. ${DEFAULT_URL}`,
    );
  }
  try {
    new URL(value);
  } catch {
    throw new UsageError(`cannot reach ${value} (from ${url.source}): it is not a valid URL`);
  }
  return value;
}

export function resolveConnection(
  flags: { url?: string; token?: string },
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): Connection {
  const path = configPath(env);
  const file = readConfigFile(path);
  const url: Setting = flags.url
    ? { value: flags.url, source: "--url" }
    : env.SKYNET_URL
      ? { value: env.SKYNET_URL, source: "SKYNET_URL" }
      : file.url
        ? { value: file.url, source: path }
        : { value: DEFAULT_URL, source: "the default" };
  const devToken = devVarsToken(cwd);
  const token: Setting | null = flags.token
    ? { value: flags.token, source: "--token" }
    : env.SKYNET_API_TOKEN
      ? { value: env.SKYNET_API_TOKEN, source: "SKYNET_API_TOKEN" }
      : file.token
        ? { value: file.token, source: path }
        : devToken
          ? { value: devToken, source: `API_TOKEN in ${join(cwd, ".dev.vars")}` }
          : null;
  return { url, token };
}
