// Following a job: its log over the server-sent event stream (GET /api/jobs/:id/logs/stream,
// `log` events with new text, one `end` event with the final status), and its status changes.
import { z } from "zod";
import { isTerminal, type JobStatus, type JobView, JobViewSchema } from "../../protocol/index.ts";
import { safeForTerminal } from "../../src/lib/text-safety.ts";
import { ServerError } from "./errors.ts";
import type { Api } from "./http.ts";

const EndSchema = z.object({ status: z.string() });

/**
 * Streams a job's whole log, calling `onLine` for each line (the last one also when it has no
 * newline), until the server's `end` event; returns the final status it reports.
 */
export async function streamLog(api: Api, jobId: string, onLine: (line: string) => void): Promise<string> {
  const res = await api.fetch(`/api/jobs/${jobId}/logs/stream`, { headers: { Accept: "text/event-stream" } });
  if (!res.body) throw new ServerError("the log stream has no body");
  const decoder = new TextDecoder();
  let buffer = "";
  let partial = "";
  const onText = (text: string) => {
    const parts = (partial + text).split("\n");
    partial = parts.pop() ?? "";
    for (const p of parts) onLine(safeForTerminal(p));
  };
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk, { stream: true }).replaceAll("\r\n", "\n");
    for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
      if (event === "log") onText(data.join("\n"));
      else if (event === "end") {
        if (partial) onLine(safeForTerminal(partial));
        const end = EndSchema.safeParse(JSON.parse(data.join("\n") || "null"));
        return end.success ? end.data.status : "UNKNOWN";
      }
    }
  }
  if (partial) onLine(safeForTerminal(partial));
  throw new ServerError(`the log stream of ${jobId} ended before the job did; run the command again to follow it`);
}

/**
 * Follows a job to its end: prints each status it waits in (`onJob`: planning, waiting for
 * approval, queued), then streams its log and prints the final view once.
 */
export async function followJob(
  api: Api,
  jobId: string,
  onJob: (job: JobView) => void,
  onLine: (line: string) => void,
): Promise<JobView> {
  let last = "";
  let job = await api.read(JobViewSchema, api.client.api.jobs[":id"].$get({ param: { id: jobId } }));
  while (job.status !== "RUNNING" && !isTerminal(job.status)) {
    if (job.status !== last) onJob(job);
    last = job.status;
    // Answered the moment the status changes (or after 30 s, asked again).
    job = await waitWhile(api, jobId, job.status);
  }
  await streamLog(api, jobId, onLine);
  const final = await api.read(JobViewSchema, api.client.api.jobs[":id"].$get({ param: { id: jobId } }));
  onJob(final);
  return final;
}

/** The job once its status is no longer `status`, or as it is after 30 s (GET /api/jobs/:id/wait). */
export function waitWhile(api: Api, jobId: string, status: JobStatus): Promise<JobView> {
  return api.read(
    JobViewSchema,
    api.client.api.jobs[":id"].wait.$get({ param: { id: jobId }, query: { timeoutS: "30", while: status } }),
  );
}
