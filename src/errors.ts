/**
 * Slow-path errors: one code enum, one error class. The fast path never throws (it counts
 * verdicts); everything else that fails raises an LbError whose message says what is wrong and,
 * where there is one, how to fix it.
 */
export const enum ErrorCode {
  /** The thing to add exists already (service, real server). */
  Exists = "EXIST",
  /** The thing to change or remove does not exist. */
  NotExist = "NOTEXIST",
  /** A value is out of range or malformed. */
  Invalid = "INVAL",
  /** A table is full. */
  NoRoom = "NOROOM",
  /** The caller may not do this (missing root, missing token). */
  Permission = "PERM",
  /** The host lacks something xvs needs (kernel feature, library, bpffs). */
  Environment = "ENV",
  /** The interface is owned by another XDP program or another xvs. */
  Busy = "BUSY",
  /** The kernel or the shim failed for a reason not listed above. */
  System = "SYSTEM",
  /** The daemon is not ready (no dataplane yet). */
  Unavailable = "UNAVAIL",
}

/** An error of the control path, with a code the API maps to an HTTP status. */
export class LbError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LbError";
    this.code = code;
  }
}

/** Return a short description of an error code. */
export function strerror(code: ErrorCode): string {
  switch (code) {
    case ErrorCode.Exists:
      return "already exists";
    case ErrorCode.NotExist:
      return "does not exist";
    case ErrorCode.Invalid:
      return "invalid argument";
    case ErrorCode.NoRoom:
      return "table full";
    case ErrorCode.Permission:
      return "permission denied";
    case ErrorCode.Environment:
      return "host environment lacks a requirement";
    case ErrorCode.Busy:
      return "resource busy";
    case ErrorCode.System:
      return "system error";
    case ErrorCode.Unavailable:
      return "not ready";
  }
}
