// Waits on a job's object for its next change: a client's wait for a status, a log stream's wait
// for more output. Each is woken by the object's next commit or agent frame (or its own timeout)
// and then looks again, so a change is heard at once, for one request per wait.

export class ChangeWaits {
  private readonly waiting = new Set<() => void>();

  /** Resolves at the next wake(), or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiting.add(done);
    });
  }

  /** Something changed: every wait looks again. */
  wake(): void {
    for (const done of this.waiting) done();
  }
}
