/** Limits and defaults of service and real server options, shared by the API schemas, the CLI and the decap helper. */

/**
 * Largest --set and -p value, seconds: ipvsadm's MAX_TIMEOUT (31 days). The 6.1 guest's kernel
 * (HZ=250) takes it (its own limit is INT_MAX / HZ); xvs keeps timeouts in 10 ms ticks
 * (clock.ts), well within int32.
 */
export const MAX_TIMEOUT_SEC = 86400 * 31;
/** Largest persistence timeout, seconds: the same ipvsadm MAX_TIMEOUT. */
export const MAX_PERSISTENT_TIMEOUT_SEC = MAX_TIMEOUT_SEC;
/** Persistence timeout of `-p` without a value, seconds (libipvs IPVS_SVC_PERSISTENT_TIMEOUT). */
export const DEFAULT_PERSISTENT_TIMEOUT_SEC = 360;
/** Weight of `-a` without `-w`. */
export const DEFAULT_WEIGHT = 1;
/** Largest weight and threshold: the kernel stores them as int (the 6.1 guest accepts 65536). */
export const MAX_WEIGHT = 2147483647;
/** UDP port the real-server decap helper (src/decap) takes GUE on by default. */
export const DEFAULT_GUE_PORT = 6080;
