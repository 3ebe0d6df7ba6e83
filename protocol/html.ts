// HTML escaping, one definition for every place that builds HTML by hand: Telegram messages
// (parse mode HTML), Sentinel alerts and the agent's service files (launchd plist XML). Quotes are
// escaped too so the same function is safe inside an attribute value.
export function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}
