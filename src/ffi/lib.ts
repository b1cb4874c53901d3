/**
 * The dlopen table of the C shim: the only place that imports bun:ffi's dlopen.
 *
 * Opened lazily, once per thread (the dataplane Worker opens its own copy of the same library;
 * dlopen returns the same handle). Every C function returns 0/count/handle or -errno; callers in
 * src/ffi convert failures into LbError once, with xvs_last_error()'s text.
 */
import { dlopen, FFIType, CString, type Pointer } from "bun:ffi";
import { shimLibraryPath } from "./shim-files.ts";
import { ErrorCode, LbError } from "../errors.ts";

const { ptr, i32, u32, u64, u64_fast, cstring } = FFIType;

const symbols = {
  xvs_last_error: { args: [], returns: ptr },
  xvs_shim_version: { args: [], returns: ptr },

  xvs_bpf__load: { args: [ptr, u64_fast, cstring], returns: ptr },
  xvs_bpf__fd: { args: [ptr, cstring], returns: i32 },
  xvs_bpf__close: { args: [ptr], returns: FFIType.void },
  xvs_xdp__attach: { args: [i32, i32, u32], returns: i32 },
  xvs_xdp__detach: { args: [i32, i32, u32], returns: i32 },
  xvs_xdp__query: { args: [i32, u32], returns: i32 },
  xvs_map__update: { args: [i32, ptr, ptr, u64], returns: i32 },
  xvs_map__delete: { args: [i32, ptr], returns: i32 },
  xvs_map__lookup: { args: [i32, ptr, ptr], returns: i32 },
  xvs_map__sum_percpu_u64: { args: [i32, u32, ptr], returns: i32 },
  xvs_map__clear: { args: [i32, u32], returns: i32 },
  // flow cache batches (native/shim/xvs_bpf.c)
  xvs_map__update_batch: { args: [i32, ptr, ptr, u32, u32, u32, u64, ptr], returns: i32 },
  xvs_map__delete_batch: { args: [i32, ptr, u32, u32, ptr], returns: i32 },
  xvs_map__lookup_keys: { args: [i32, ptr, ptr, u32, u32, u32, ptr], returns: i32 },
  xvs_map__dump_batch: { args: [i32, ptr, i32, ptr, ptr, u32, ptr], returns: i32 },
  xvs_bpf__load_sized: { args: [ptr, u64_fast, cstring, cstring, u32], returns: ptr },
  xvs_clock__boottime: { args: [ptr], returns: i32 },
  xvs_bpf__prog_fd_by_id: { args: [u32], returns: i32 },
  xvs_bpf__map_fd_by_id: { args: [u32], returns: i32 },
  xvs_bpf__obj_info: { args: [i32, ptr, ptr], returns: i32 },
  xvs_bpf__obj_id: { args: [i32], returns: i32 },
  xvs_fd__close: { args: [i32], returns: i32 },
  // tests only: BPF_PROG_TEST_RUN
  xvs_bpf__test_run: { args: [i32, ptr, u32, ptr, u32, ptr, u32, ptr], returns: i32 },

  xvs_port__create: { args: [u32, u32, u32, u32], returns: ptr },
  xvs_port__add_iface: { args: [ptr, cstring, u32, u32, i32, u32], returns: i32 },
  xvs_port__umem: { args: [ptr], returns: ptr },
  xvs_port__umem_size: { args: [ptr], returns: u64_fast },
  xvs_port__stats: { args: [ptr], returns: ptr },
  xvs_port__bind_mode: { args: [ptr, u32], returns: i32 },
  xvs_port__burst: { args: [ptr, ptr, u32, u32, i32], returns: i32 },
  xvs_port__destroy: { args: [ptr], returns: FFIType.void },
  xvs_port__profile: { args: [ptr, i32], returns: ptr },

  xvs_link__info: { args: [cstring, ptr], returns: i32 },
  xvs_nl__route_get: { args: [i32, ptr, ptr], returns: i32 },
  xvs_nl__neigh_get: { args: [i32, i32, ptr, ptr], returns: i32 },
  xvs_nl__neigh_resolve: { args: [i32, i32, ptr], returns: i32 },
  xvs_nl__dump_addrs: { args: [ptr, i32], returns: i32 },
  xvs_nl__dump_routes: { args: [i32, ptr, i32], returns: i32 },
  xvs_nl__dump_neighs: { args: [i32, ptr, i32], returns: i32 },
  xvs_nl__events_open: { args: [], returns: i32 },
  xvs_nl__events_drain: { args: [i32], returns: i32 },
  xvs_nl__close: { args: [i32], returns: FFIType.void },

  xvs_ethtool__driver: { args: [cstring, ptr, u32], returns: i32 },
  xvs_ethtool__stats: { args: [cstring, ptr, ptr, u32], returns: i32 },
  xvs_netdev__xdp_features: { args: [u32, ptr], returns: i32 },

  xvs_mem__hugepages: { args: [ptr, u64], returns: i32 },

  // xvs bench only (native/shim/xvs_gen.c)
  xvs_gen__run: { args: [i32, i32, ptr, u32, u32, u32], returns: i32 },
  xvs_gen__pin_cpu: { args: [i32], returns: i32 },
  xvs_gen__tc_attach: { args: [i32, i32], returns: i32 },
  xvs_gen__percpu_sum_u32: { args: [i32, u32, ptr], returns: i32 },
} as const;

export type Shim = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

let shim: Shim | null = null;
let openError: string | null = null;

/**
 * Return the shim's symbols, opening the library on first use.
 * @throws LbError naming the missing runtime library when dlopen fails (libxdp1/libbpf1 absent
 *   from a source tree; libelf1/zlib1g absent anywhere), or when the embedded shim cannot be unpacked.
 */
export function lib(): Shim {
  if (shim) return shim;
  if (openError) throw new LbError(ErrorCode.Environment, openError);
  let path = process.env.XVS_SHIM_PATH ?? "";
  try {
    // XVS_SHIM_PATH: tests point it at a shim whose libraries are missing, to check the message
    if (!path) path = shimLibraryPath();
    shim = dlopen(path, symbols).symbols;
    return shim;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    openError = /libxdp|libbpf/.test(msg)
      ? `cannot load the xvs shim: ${msg}. Install the runtime libraries: apt-get install libxdp1 libbpf1`
      : /libelf|libz\b/.test(msg)
        ? `cannot load the xvs shim: ${msg}. Install the runtime libraries: apt-get install libelf1 zlib1g`
        : `cannot load the xvs shim (${path || "unpacking it failed"}): ${msg}`;
    throw new LbError(ErrorCode.Environment, openError);
  }
}

/** Return the text of the shim's last failure on this thread. */
export function lastError(): string {
  const p = lib().xvs_last_error();
  return p ? new CString(p as Pointer).toString() : "";
}

/** Pass a JS string as a C string argument. */
export function cstr(s: string): Buffer {
  return Buffer.from(s + "\0", "utf8");
}
