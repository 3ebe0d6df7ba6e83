// Where the operator CLI gets the server URL and token (flag > env > config file > ./.dev.vars >
// default), and its error messages and exit codes, against a real Worker under wrangler dev.
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/node/ports.ts";
import { type CliResult, runCli } from "../helpers/node/skynet-cli.ts";
import { type RunningWorker, startWorker } from "../helpers/node/wrangler-dev.ts";

let worker: RunningWorker;
let cwd: string;
let config: string;
const WRONG = "not-the-token";

const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
  runCli(args, { cwd, env: { SKYNET_CONFIG: config, ...env } });

async function writeConfig(value: unknown): Promise<void> {
  await writeFile(config, typeof value === "string" ? value : JSON.stringify(value));
}
const writeDevVars = (token: string) => writeFile(join(cwd, ".dev.vars"), `API_TOKEN=${token}\n`);

beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), "skynet-cli-config-"));
  config = join(cwd, "cli.json");
  worker = await startWorker();
});

afterAll(async () => {
  await worker?.stop();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

describe("skynet CLI configuration", () => {
  it("--version prints the package's version", async () => {
    const pkg = JSON.parse(readFileSync(resolve(import.meta.dirname, "../../package.json"), "utf8")) as {
      version: string;
    };
    const res = await cli(["--version"]);
    expect(res).toMatchObject({ code: 0, stdout: `skynet ${pkg.version}\n` });
    expect(JSON.parse((await cli(["--version", "--json"])).stdout)).toEqual({ version: pkg.version });
  });

  it("the token: --token beats SKYNET_API_TOKEN beats the config file beats ./.dev.vars", async () => {
    await writeConfig({ url: worker.url, token: WRONG });
    await writeDevVars(WRONG);
    expect((await cli(["jobs", "--token", worker.apiToken], { SKYNET_API_TOKEN: WRONG })).code).toBe(0);
    expect((await cli(["jobs"], { SKYNET_API_TOKEN: worker.apiToken })).code).toBe(0);
    await writeConfig({ url: worker.url, token: worker.apiToken });
    expect((await cli(["jobs"])).code).toBe(0);
    await writeConfig({ url: worker.url });
    await writeDevVars(worker.apiToken);
    expect((await cli(["jobs"])).code).toBe(0);
    // And the other way round: the higher source wins even when it is the wrong one.
    await writeConfig({ url: worker.url, token: worker.apiToken });
    const refused = await cli(["jobs"], { SKYNET_API_TOKEN: WRONG });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("refused the API token from SKYNET_API_TOKEN (401");
  });

  it("the URL: --url beats SKYNET_URL beats the config file", async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    await writeConfig({ url: nowhere, token: worker.apiToken });
    expect((await cli(["jobs", "--url", worker.url], { SKYNET_URL: nowhere })).code).toBe(0);
    expect((await cli(["jobs"], { SKYNET_URL: worker.url })).code).toBe(0);
    await writeConfig({ url: worker.url, token: worker.apiToken });
    expect((await cli(["jobs"])).code).toBe(0);
    const env = await cli(["jobs"], { SKYNET_URL: nowhere });
    expect(env.code).toBe(1);
    expect(env.stderr).toContain(`cannot reach ${nowhere} (from SKYNET_URL)`);
    expect(env.stderr).toContain("is `npm run dev` running?");
  });

  it("a refused token's message says where the token came from", async () => {
    await writeConfig({ url: worker.url, token: WRONG });
    const fromConfig = await cli(["jobs"]);
    expect(fromConfig.code).toBe(1);
    expect(fromConfig.stderr).toContain(`refused the API token from ${config}`);
    await writeConfig({ url: worker.url });
    await writeDevVars(WRONG);
    const fromDevVars = await cli(["jobs"]);
    expect(fromDevVars.stderr).toContain(`refused the API token from API_TOKEN in ${join(cwd, ".dev.vars")}`);
    const fromFlag = await cli(["jobs", "--token", WRONG]);
    expect(fromFlag.stderr).toContain("refused the API token from --token");
  });

  it("a URL without http:// is a usage error that says so", async () => {
    const res = await cli(["jobs"], {
      SKYNET_URL: worker.url.replace("http://", ""),
      SKYNET_API_TOKEN: worker.apiToken,
    });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`cannot reach ${worker.url.replace("http://", "")} (from SKYNET_URL)`);
    expect(res.stderr).toContain("the URL must start with http:// or https://");
  });

  it("usage errors exit 2, server errors 1", async () => {
    await writeConfig({ url: worker.url, token: worker.apiToken });
    const cases: [string[], number, string][] = [
      [["frobnicate"], 2, 'unknown command "frobnicate"'],
      [["jobs", "--bogus"], 2, "Unknown option '--bogus'"],
      [["status"], 2, "status needs a job id"],
      [["status", "nope"], 2, '"nope" is not a job id'],
      [["agents", "revoke", "tok_x"], 2, "agents revoke needs one token id"],
      [["status", "job_0000000000000000"], 1, "404"],
      [["jobs", "--limit", "0"], 2, "400"],
      [[], 2, "usage: npx skynet"],
    ];
    for (const [args, code, text] of cases) {
      const res = await cli(args);
      expect({ args, code: res.code }).toEqual({ args, code });
      expect(res.stderr).toContain(text);
    }
  });

  it("a config file that is not valid is a usage error naming the file", async () => {
    await writeConfig("{not json");
    const bad = await cli(["jobs"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`the config file ${config} is not JSON`);
    await writeConfig({ url: worker.url, token: worker.apiToken, extra: 1 });
    const extra = await cli(["jobs"]);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain("may hold only");
  });

  it("no token anywhere is a usage error that says where to put one", async () => {
    await writeConfig({ url: worker.url });
    await rm(join(cwd, ".dev.vars"), { force: true });
    const res = await cli(["jobs"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("no API token: set SKYNET_API_TOKEN");
  });
});
