import type { ServerResponse } from 'node:http';

/** Error codes of the distribution spec that a read-only registry answers with. */
export type RegistryErrorCode = 'BLOB_UNKNOWN' | 'DIGEST_INVALID' | 'MANIFEST_BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'NAME_INVALID' | 'NAME_UNKNOWN' | 'UNSUPPORTED' | 'RANGE_INVALID' | 'UNAVAILABLE' | 'UNKNOWN';

/** A request the registry refuses: an HTTP status and one spec error (docs: distribution-spec, "Error Codes"). */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: RegistryErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Writes the spec's error body `{"errors":[{code,message,detail}]}` (HEAD gets the status only); returns the body bytes sent. */
export function sendError(res: ServerResponse, err: RegistryError, head: boolean): number {
  const body = Buffer.from(JSON.stringify({ errors: [{ code: err.code, message: err.message, detail: {} }] }));
  res.writeHead(err.status, { ...err.headers, 'Content-Type': 'application/json', 'Content-Length': String(body.length) });
  res.end(head ? undefined : body);
  return head ? 0 : body.length;
}
