// The last gate before anything reaches a chat: every Bot API call's text and caption has the
// deployment's secrets redacted and bidi/zero-width characters made visible (or stripped when
// showing them would break Telegram's length limit). Installed on every Api the Worker uses.
import type { RawApi, Transformer } from "grammy";
import { clip, MAX_MESSAGE } from "../bot/format.ts";
import type { Redactor } from "../lib/redact.ts";
import { makeVisible, stripInvisible } from "../lib/text-safety.ts";

const MAX_CAPTION = 1024;
const MAX_CALLBACK_TEXT = 200;

/** Redacted and made visible, within `max` characters. */
export function safeChatText(text: string, redactor: Redactor, max: number): string {
  const redacted = redactor.redact(text);
  const shown = makeVisible(redacted);
  if (shown.length <= max) return shown;
  const stripped = stripInvisible(redacted);
  return stripped.length <= max ? stripped : clip(stripped).slice(0, max);
}

const LIMITS: Record<string, number> = { text: MAX_MESSAGE, caption: MAX_CAPTION };

export function chatSafety(redactor: Redactor): Transformer<RawApi> {
  return function chatSafety(prev, method, payload, signal) {
    const fields = payload as unknown as Record<string, unknown> | undefined;
    if (!fields || typeof fields !== "object") return prev(method, payload, signal);
    const cleaned: Record<string, unknown> = { ...fields };
    for (const key of ["text", "caption"] as const) {
      const value = cleaned[key];
      if (typeof value !== "string") continue;
      const max = method === "answerCallbackQuery" ? MAX_CALLBACK_TEXT : (LIMITS[key] ?? MAX_MESSAGE);
      cleaned[key] = safeChatText(value, redactor, max);
    }
    return prev(method, cleaned as unknown as typeof payload, signal);
  };
}
