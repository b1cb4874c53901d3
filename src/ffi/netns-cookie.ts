/**
 * The network namespace cookie: a 64-bit id the kernel gives each network namespace and never
 * hands out again within a boot (net->net_cookie, read with getsockopt(SO_NETNS_COOKIE) since
 * Linux 5.14, sk_getsockopt in net/core/sock.c). Unlike the namespace's inode number, which the
 * kernel reuses as soon as a namespace is freed, it tells two namespaces of one boot apart.
 *
 * Read through libc rather than the C shim: it is three plain libc calls made once at start, and
 * it must work before (and without) the shim being unpacked. Slow path: BigInt is fine here.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
/** include/uapi/asm-generic/socket.h */
const SO_NETNS_COOKIE = 71;

/** The three libc calls the cookie needs (dlopen throws when libc cannot be opened). */
function openLibc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}

/**
 * Return the cookie of the calling thread's network namespace as a decimal string, or null when
 * the kernel does not have SO_NETNS_COOKIE (before 5.14) or libc cannot be opened.
 */
export function netnsCookie(): string | null {
  let libc: ReturnType<typeof openLibc>;
  try {
    libc = openLibc();
  } catch {
    return null;
  }
  try {
    const c = libc.symbols;
    // any socket carries its namespace; a unix datagram socket needs nothing else from the host
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return null;
    try {
      const val = new BigUint64Array(1);
      const len = new Uint32Array([8]);
      if (c.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, ptr(val), ptr(len)) !== 0 || len[0] !== 8) return null;
      return val[0].toString();
    } finally {
      c.close(fd);
    }
  } finally {
    libc.close();
  }
}
