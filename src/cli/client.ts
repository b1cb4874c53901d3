/**
 * The CLI's only way to the daemon: its HTTP API. Answers are JSON; errors come back as
 * ApiError with the API's error body, and `kernelMessage` turns them into the words the kernel
 * (through ipvsadm's ipvs_strerror) would have used.
 */
import { FWMARK_UNSUPPORTED_MESSAGE, THRESHOLD_ORDER_MESSAGE, type ErrorBodyT } from "../control/schemas.ts";
import { AdmExit } from "./parse.ts";

/** The fetch the client uses (globalThis.fetch, or app.request in tests). */
export type Fetch = (input: string, init?: RequestInit) => Response | Promise<Response>;

/** A refusal by the daemon. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBodyT,
  ) {
    super(body.error.message);
  }
}

/** A client of one daemon's API. */
export class ApiClient {
  constructor(
    private readonly fetch: Fetch,
    private readonly base: string,
    private readonly token: string | null,
  ) {}

  /** Call the API; resolves with the parsed body (null for 204). @throws ApiError, AdmExit when no daemon answers. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetch(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      // ipvsadm's words when ipvs_init fails, with what to do about it
      throw new AdmExit(
        2,
        `Can't initialize ipvs: no xvs daemon answers at ${this.base} (${e instanceof Error ? e.message : String(e)})\n` +
          "Are you sure that the xvs daemon runs in this network namespace (xvs run --iface IF)?\n",
      );
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { error: { code: "internal", message: text.slice(0, 200) } };
    }
    if (!res.ok) {
      const err = (json as ErrorBodyT)?.error ? (json as ErrorBodyT) : { error: { code: String(res.status), message: `HTTP ${res.status}` } };
      throw new ApiError(res.status, err);
    }
    return json as T;
  }
}

/** What ipvsadm would print for a daemon's refusal (ipvs_strerror of the kernel's errno). */
export function kernelMessage(e: ApiError): string {
  const issues = e.body.error.issues ?? [];
  if (e.status === 401) return "Permission denied (you must be root)";
  // ENOENT: an unknown scheduler or persistence engine
  if (issues.some((i) => /(^|\.)(scheduler|pe)$/.test(i.path))) return "Scheduler or persistence engine not found";
  // ERANGE from ip_vs_add_dest / ip_vs_edit_dest: strerror's words
  if (issues.some((i) => i.message === THRESHOLD_ORDER_MESSAGE)) return "Numerical result out of range";
  // a fwmark service reached the daemon (the CLI refuses it before sending): the same words
  if (issues.some((i) => i.message === FWMARK_UNSUPPORTED_MESSAGE)) return FWMARK_UNSUPPORTED_MESSAGE;
  if (e.status === 503) return "Memory allocation problem";
  return e.body.error.message;
}
