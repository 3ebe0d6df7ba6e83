// The registry's stubs to JobDOs, one kept per job while it is recent: making a stub hashes the
// job's name (getByName), the registry's largest cost of its own in the CPU profile, and a job's
// frames, leases and notices go through the same stub (so they also arrive in the order sent).
// A call that threw drops its stub: the runtime fails every later call on a broken stub.
import { jobStub } from "./registry-stub.ts";

type JobStub = ReturnType<typeof jobStub>;

/** Stubs kept: more than the jobs an agent fleet runs at once. */
const KEPT = 256;

export class JobStubs {
  private readonly env: Env;
  private readonly stubs = new Map<string, JobStub>();

  constructor(env: Env) {
    this.env = env;
  }

  /** Runs `call` on the job's stub (made once), dropping the stub if the call throws. */
  async call<R>(jobId: string, call: (job: JobStub) => R): Promise<Awaited<R>> {
    let stub = this.stubs.get(jobId);
    if (stub) this.stubs.delete(jobId);
    else stub = jobStub(this.env, jobId);
    // Most recently used last: the first key is the one to drop.
    this.stubs.set(jobId, stub);
    if (this.stubs.size > KEPT) {
      const oldest = this.stubs.keys().next().value;
      if (oldest !== undefined) this.stubs.delete(oldest);
    }
    try {
      return await call(stub);
    } catch (err) {
      if (this.stubs.get(jobId) === stub) this.stubs.delete(jobId);
      throw err;
    }
  }

  /** How many stubs are kept (for tests). */
  get size(): number {
    return this.stubs.size;
  }
}
