/**
 * The native artifacts built by build.ts. Imported as files so that `bun build --compile`
 * embeds them in the executable; at run time each import is a path (a real file in the source
 * tree, or Bun's extracted copy inside a compiled binary).
 */
import shimPath from "../../native/out/libxvs.so" with { type: "file" };
// the shim's libraries, copied beside it by build.ts (see shim-files.ts)
import libxdpPath from "../../native/out/libxdp.so.1" with { type: "file" };
import libbpfPath from "../../native/out/libbpf.so.1" with { type: "file" };
import steerObjPath from "../../native/out/xvs_steer.bpf.o" with { type: "file" };
import decapObjPath from "../../native/out/xvs_decap.bpf.o" with { type: "file" };

export { decapObjPath, libbpfPath, libxdpPath, shimPath, steerObjPath };
