// The registry's working parts, built once by AgentRegistryDO and shared by Sessions and Frames.
import type { Config } from "../config.ts";
import type { AssignmentBook } from "./assignments.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { JobStubs } from "./job-stubs.ts";
import type { Sockets } from "./sockets.ts";
import type { WorkerLedger } from "./worker-ledger.ts";

export interface RegistryParts {
  readonly config: Config;
  readonly book: AssignmentBook;
  readonly sockets: Sockets;
  readonly dispatcher: Dispatcher;
  readonly ledger: WorkerLedger;
  readonly jobs: JobStubs;
}
