// A JobDO's SQL for log-row tests: run in a named object, with the statements a test cares about
// (those `counted` picks) recorded as they are sent.
import { env, runInDurableObject } from "cloudflare:test";
import type { JobDO } from "../../src/jobs/job-do.ts";
import { insides } from "./job-insides.ts";

/** The object's SQL, with every statement `counted` picks recorded in `reads`. */
export function countingSql(
  sql: SqlStorage,
  counted: (query: string) => boolean,
): { sql: SqlStorage; reads: string[] } {
  const reads: string[] = [];
  const wrapped = new Proxy(sql, {
    get(target, prop) {
      if (prop === "exec") {
        return (query: string, ...args: unknown[]) => {
          if (counted(query)) reads.push(query);
          return target.exec(query, ...(args as SqlStorageValue[]));
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { sql: wrapped, reads };
}

/** Runs `fn` with the SQL storage of the JobDO named `name`. */
export const inObject = <T>(name: string, fn: (sql: SqlStorage) => T | Promise<T>) =>
  runInDurableObject(env.JOB.getByName(name), (i: JobDO) => fn(insides(i).ctx.storage.sql));
