/**
 * Freezes a value and everything it holds, so one object can be shared by every reader and a
 * reader that tries to change it throws. Frozen before its parts, so a cycle ends.
 */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
