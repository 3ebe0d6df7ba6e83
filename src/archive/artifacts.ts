// ArtifactStore on R2: artifacts/jobs/{jobId}/{name}. Uploads are streamed with a declared size
// and sha256 (R2 verifies the digest), names are plain file names, sizes are bounded.
import { ArtifactNameSchema, type ArtifactRef, JobIdSchema } from "../../protocol/index.ts";
import { MAX_ARTIFACT_BYTES } from "../jobs/limits.ts";

export const artifactKey = (jobId: string, name: string): string => `artifacts/jobs/${jobId}/${name}`;

export class ArtifactError extends Error {
  readonly code: "bad_request" | "payload_too_large";
  constructor(code: "bad_request" | "payload_too_large", message: string) {
    super(message);
    this.code = code;
  }
}

export interface StoredArtifact extends Omit<ArtifactRef, "stepId"> {
  uploadedAt: string;
  url: string;
}

function checkNames(jobId: string, name: string): void {
  if (!JobIdSchema.safeParse(jobId).success) throw new ArtifactError("bad_request", "invalid job id");
  const parsed = ArtifactNameSchema.safeParse(name);
  if (!parsed.success) {
    throw new ArtifactError("bad_request", `invalid artifact name: ${parsed.error.issues[0]?.message ?? ""}`);
  }
}

function describe(jobId: string, obj: R2Object): StoredArtifact {
  const name = obj.key.slice(`artifacts/jobs/${jobId}/`.length);
  return {
    name,
    size: obj.size,
    sha256: obj.customMetadata?.sha256 ?? "",
    contentType: obj.httpMetadata?.contentType ?? "application/octet-stream",
    uploadedAt: obj.uploaded.toISOString(),
    url: `/api/jobs/${jobId}/artifacts/${encodeURIComponent(name)}`,
  };
}

export class ArtifactStore {
  private readonly bucket: R2Bucket;
  constructor(bucket: R2Bucket) {
    this.bucket = bucket;
  }

  async put(
    jobId: string,
    name: string,
    body: ReadableStream | ArrayBuffer | string,
    meta: { size: number; sha256: string; contentType: string; extra?: Record<string, string> },
  ): Promise<StoredArtifact> {
    checkNames(jobId, name);
    if (meta.size > MAX_ARTIFACT_BYTES) {
      throw new ArtifactError("payload_too_large", `artifacts are limited to ${MAX_ARTIFACT_BYTES} bytes`);
    }
    let stream: ReadableStream | ArrayBuffer | string = body;
    if (body instanceof ReadableStream) {
      // A known length lets R2 stream the upload; a body of another length fails the put.
      const fixed = new FixedLengthStream(meta.size);
      void body.pipeTo(fixed.writable).catch(() => undefined);
      stream = fixed.readable;
    }
    try {
      const stored = await this.bucket.put(artifactKey(jobId, name), stream, {
        sha256: meta.sha256,
        httpMetadata: { contentType: meta.contentType },
        customMetadata: { sha256: meta.sha256, ...meta.extra },
      });
      return describe(jobId, stored);
    } catch (err) {
      throw new ArtifactError("bad_request", `upload rejected: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async get(jobId: string, name: string): Promise<R2ObjectBody | null> {
    checkNames(jobId, name);
    return this.bucket.get(artifactKey(jobId, name));
  }

  async list(jobId: string): Promise<StoredArtifact[]> {
    if (!JobIdSchema.safeParse(jobId).success) throw new ArtifactError("bad_request", "invalid job id");
    const out: StoredArtifact[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({
        prefix: `artifacts/jobs/${jobId}/`,
        cursor,
        include: ["httpMetadata", "customMetadata"],
      });
      out.push(...page.objects.map((o) => describe(jobId, o)));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return out;
  }

  /** Deletes every artifact of a job; returns how many. */
  async deleteJob(jobId: string): Promise<number> {
    const all = await this.list(jobId);
    if (all.length > 0) await this.bucket.delete(all.map((a) => artifactKey(jobId, a.name)));
    return all.length;
  }
}
