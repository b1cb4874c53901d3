/**
 * Ticks per second of the dataplane's clock: connection deadlines, persistence and compiled
 * timeouts run in 10 ms ticks (int32 wraps after 248 days). The compiler converts seconds with
 * it, the connection table and the lblc/lblcr caches age with it.
 */
export const TICKS_PER_SEC = 100;
