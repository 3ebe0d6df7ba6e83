// Redacts the deployment's secrets from every JSON and text response (job views, log tails,
// whole logs, the live log stream): the last line of defence after the log buffer's own
// redaction. Streams are redacted as they flow, holding back only a tail that could be the start
// of a secret, so live events are not delayed. Artifact downloads and WebSocket upgrades pass as is.
import type { MiddlewareHandler } from "hono";
import { type Redactor, redactorFor } from "../lib/redact.ts";

const TEXTUAL = /^(application\/json|text\/plain|text\/event-stream)\b/i;
const WHOLE = /^application\/json\b/i;
const ARTIFACT_DOWNLOAD = /^\/api\/jobs\/[^/]+\/artifacts\/[^/]+$/;

function redactStream(body: ReadableStream<Uint8Array>, redactor: Redactor): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let carry = "";
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        const text = redactor.redact(carry + decoder.decode(chunk, { stream: true }));
        const hold = redactor.pendingPrefix(text);
        carry = text.slice(text.length - hold);
        const out = text.slice(0, text.length - hold);
        if (out) controller.enqueue(encoder.encode(out));
      },
      flush(controller) {
        const rest = redactor.redact(carry + decoder.decode());
        if (rest) controller.enqueue(encoder.encode(rest));
      },
    }),
  );
}

export function redactOutput(): MiddlewareHandler<{ Bindings: Env }> {
  return async function redactOutput(c, next) {
    await next();
    const res = c.res;
    if (res.status === 101 || res.webSocket || !res.body) return;
    if (!TEXTUAL.test(res.headers.get("Content-Type") ?? "")) return;
    if (c.req.method === "GET" && ARTIFACT_DOWNLOAD.test(c.req.path)) return;
    const redactor = redactorFor(c.env);
    if (redactor.empty) return;
    const headers = new Headers(res.headers);
    headers.delete("Content-Length");
    // A JSON body was built whole in memory anyway: redacted in one pass (a TransformStream per
    // response cost ≈ 5 % of the Worker's CPU per job in bench/profile.ts). Text (whole logs, up
    // to the log cap) and live event streams flow through as they come.
    const body = WHOLE.test(res.headers.get("Content-Type") ?? "")
      ? redactor.redact(await res.text())
      : redactStream(res.body, redactor);
    c.res = new Response(body, { status: res.status, statusText: res.statusText, headers });
  };
}
