// Agent pairing and tokens: a one-time code (10 minutes) is exchanged for a random token; only
// SHA-256 hashes of codes and tokens are stored.

import { createPairing, findActiveToken, redeemPairing, touchToken } from "../ledger/agent-store.ts";
import { getDb } from "../ledger/store.ts";
import { pairingCode, randomHex, sha256Hex } from "../lib/crypto.ts";

export const PAIRING_TTL_MS = 10 * 60_000;

export async function issuePairingCode(
  env: Env,
  opts: { name?: string; createdBy: string },
): Promise<{ code: string; expiresAt: number; agentId: string }> {
  const code = pairingCode();
  const now = Date.now();
  const agentId = `agent_${randomHex(8)}`;
  await createPairing(getDb(env.DB), {
    id: `tok_${randomHex(8)}`,
    agentId,
    name: opts.name ?? "agent",
    codeHash: await sha256Hex(code),
    expiresAt: now + PAIRING_TTL_MS,
    createdBy: opts.createdBy,
    at: now,
  });
  return { code, expiresAt: now + PAIRING_TTL_MS, agentId };
}

/** Redeems a code once; returns the new token (shown once, never stored) or null. */
export async function redeemCode(
  env: Env,
  code: string,
  name: string,
): Promise<{ agentId: string; token: string } | null> {
  const token = `skya_${randomHex(32)}`;
  const res = await redeemPairing(getDb(env.DB), {
    codeHash: await sha256Hex(code),
    tokenHash: await sha256Hex(token),
    name,
    now: Date.now(),
  });
  return res ? { agentId: res.agentId, token } : null;
}

export async function authenticateAgent(env: Env, token: string): Promise<{ agentId: string; name: string } | null> {
  const db = getDb(env.DB);
  const found = await findActiveToken(db, await sha256Hex(token));
  if (!found) return null;
  await touchToken(db, found.id, Date.now()).catch(() => undefined);
  return { agentId: found.agentId, name: found.name };
}
