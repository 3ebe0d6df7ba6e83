// Worker tests: after each test, any Bot API call the stand-in refused (as Telegram would) that
// the test neither arranged nor declared fails the test, listing the calls; so does a webhook
// update whose handler threw (acknowledged to Telegram, counted in webhook_errors) unless the
// test declared it. A bot message with bad HTML, an invalid button, a second answer to a
// callback query or a crashing handler cannot pass unnoticed.
import { env } from "cloudflare:test";
import { afterAll, afterEach, beforeEach } from "vitest";
import { scopes, takeExpectedWebhookErrors } from "./telegram.ts";

async function webhookErrors(): Promise<number> {
  const row = await env.DB.prepare("SELECT value FROM counters WHERE name = 'webhook_errors'").first<{
    value: number;
  }>();
  return row?.value ?? 0;
}

let baseline = 0;

async function check(): Promise<void> {
  const problems: string[] = [];
  const refused = (await Promise.all(scopes.map((s) => s.takeUnexpectedRefusals()))).flat();
  if (refused.length > 0) {
    const lines = refused.map((c) => `  ${c.method} → ${c.error}`).join("\n");
    problems.push(`Telegram refused ${refused.length} Bot API call(s) this test made:\n${lines}`);
  }
  const now = await webhookErrors().catch(() => baseline);
  const unexpected = now - baseline - takeExpectedWebhookErrors();
  baseline = now;
  if (unexpected > 0) problems.push(`${unexpected} webhook update(s) failed in their handler (see the error log)`);
  if (problems.length > 0) throw new Error(problems.join("\n"));
}

beforeEach(async () => {
  baseline = await webhookErrors().catch(() => 0);
});
afterEach(check);
// Calls made after the last test ended (the JobDO notifies from its alarms) count too.
afterAll(check);
