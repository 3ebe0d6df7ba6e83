// The Worker's configuration: a set but invalid variable is an error naming it (never its value),
// not a silent default; the Worker then answers 503 with that message and /health fails `config`.
import { createExecutionContext, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.ts";
import worker from "../src/index.ts";
import { API_TOKEN } from "./helpers/worker.ts";

const withVars = (vars: Record<string, unknown>): Env => ({ ...env, ...vars }) as Env;

function refusal(vars: Record<string, unknown>): string {
  const parsed = parseConfig(withVars(vars));
  if (parsed.ok) throw new Error(`accepted ${JSON.stringify(vars)}`);
  return parsed.error;
}

describe("parseConfig", () => {
  it("parses each set of values once, shares a frozen result, and follows a changed value", () => {
    const a = parseConfig(withVars({ JOB_TIMEOUT_SECONDS: "123" }));
    const b = parseConfig(withVars({ JOB_TIMEOUT_SECONDS: "123" }));
    const c = parseConfig(withVars({ JOB_TIMEOUT_SECONDS: "124" }));
    if (!a.ok || !b.ok || !c.ok) throw new Error("refused a valid configuration");
    expect(b.value).toBe(a.value);
    expect(Object.isFrozen(a.value)).toBe(true);
    expect(a.value.jobTimeoutS).toBe(123);
    expect(c.value.jobTimeoutS).toBe(124);
    expect(parseConfig(withVars({ JOB_TIMEOUT_SECONDS: "ten" })).ok).toBe(false);
  });

  it("names each invalid variable and not its value", () => {
    const cases: [string, string][] = [
      ["JOB_TIMEOUT_SECONDS", "tenish"],
      ["LEASE_SECONDS", "0"],
      ["AUTO_APPROVE_READ_ONLY", "maybe"],
      ["TELEGRAM_ALLOWED_USER_IDS", "42,bob"],
      ["SKYNET_LOG_LEVEL", "loud"],
      ["MAX_DISPATCH_ATTEMPTS", "11"],
      ["TELEGRAM_API_ROOT", "telegram"],
      ["TELEGRAM_BOT_USERNAME", "a b"],
    ];
    for (const [name, value] of cases) {
      const message = refusal({ [name]: value });
      expect(message).toContain(name);
      expect(message).not.toContain(value === "0" || value === "11" ? `"${value}"` : value);
    }
    expect(refusal({ JOB_TIMEOUT_SECONDS: "x", LEASE_SECONDS: "y" })).toMatch(/JOB_TIMEOUT_SECONDS.*LEASE_SECONDS/);
  });

  it("reads blanks as unset, numbers and booleans from [vars] as their text", () => {
    const parsed = parseConfig(
      withVars({
        JOB_TIMEOUT_SECONDS: " ",
        LEASE_SECONDS: 45,
        AUTO_APPROVE_READ_ONLY: false,
        SKYNET_LOG_LEVEL: "WARN",
      }),
    );
    if (!parsed.ok) throw new Error(parsed.error);
    expect(parsed.value.jobTimeoutS).toBe(3600);
    expect(parsed.value.leaseS).toBe(45);
    expect(parsed.value.autoApproveReadOnly).toBe(false);
    expect(parsed.value.logLevel).toBe("warn");
    expect(parsed.value.telegramAllowedUserIds).toContain("42");
  });
});

describe("a Worker with a bad variable", () => {
  const bad = withVars({ JOB_TIMEOUT_SECONDS: "ten" });
  const call = (path: string, init: RequestInit = {}) =>
    worker.fetch(new Request(`https://skynet.test${path}`, init), bad, createExecutionContext());

  it("answers every request 503 naming the variable, even with a valid token", async () => {
    for (const path of ["/api/jobs", "/telegram/webhook", "/metrics"]) {
      const res = await call(path, {
        method: path === "/telegram/webhook" ? "POST" : "GET",
        headers: { Authorization: `Bearer ${API_TOKEN}` },
      });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("unavailable");
      expect(body.error.message).toContain("JOB_TIMEOUT_SECONDS");
    }
  });

  it("fails /health's config check, the other checks still run", async () => {
    const res = await call("/health");
    expect(res.status).toBe(503);
    const body = (await res.json()) as { ok: boolean; checks: Record<string, { ok: boolean; error?: string }> };
    expect(body.ok).toBe(false);
    expect(body.checks.config?.ok).toBe(false);
    expect(body.checks.config?.error).toContain("JOB_TIMEOUT_SECONDS");
    expect(body.checks.d1?.ok).toBe(true);
  });
});
