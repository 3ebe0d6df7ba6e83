// Which chat inbox an update belongs to: updates of one chat are answered one at a time in arrival
// order, so a reply never overtakes an earlier one. A button press belongs to the chat of its
// message (or to the user, for an inline message that has none).

/** One ChatInboxDO per key. */
export type ChatKey = `chat:${number}` | `user:${number}` | "other";

function objectAt(o: unknown, field: string): Record<string, unknown> | undefined {
  if (typeof o !== "object" || o === null) return undefined;
  const v = (o as Record<string, unknown>)[field];
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
}

function intAt(o: Record<string, unknown> | undefined, field: string): number | undefined {
  const v = o?.[field];
  return typeof v === "number" && Number.isSafeInteger(v) ? v : undefined;
}

/** The inbox of an update already checked by the webhook's envelope schema. */
export function chatKeyOf(update: Record<string, unknown>): ChatKey {
  const callback = objectAt(update, "callback_query");
  if (callback) {
    const chatId = intAt(objectAt(objectAt(callback, "message"), "chat"), "id");
    if (chatId !== undefined) return `chat:${chatId}`;
    const userId = intAt(objectAt(callback, "from"), "id");
    return userId !== undefined ? `user:${userId}` : "other";
  }
  // Every other kind carries one payload object: a message-like one has a chat, the rest
  // (inline queries, polls answers, …) at most a sender.
  for (const [field, payload] of Object.entries(update)) {
    if (field === "update_id") continue;
    const chatId = intAt(objectAt(payload, "chat"), "id");
    if (chatId !== undefined) return `chat:${chatId}`;
    const userId = intAt(objectAt(payload, "from"), "id") ?? intAt(objectAt(payload, "user"), "id");
    if (userId !== undefined) return `user:${userId}`;
  }
  return "other";
}
