/**
 * Where the shim is dlopened from.
 *
 * From a source tree: native/out/libxvs.so as built, with the copies of libxdp.so.1 and
 * libbpf.so.1 that build.ts put beside it (the shim's RUNPATH is $ORIGIN).
 *
 * From the compiled executable, which embeds all three: Bun would extract each embedded file
 * under a hashed name of its own, where the shim's RUNPATH cannot find its libraries by soname.
 * So the three are written, under their own names, into one private directory named by their
 * content (written once, reused by every later start and by each worker thread), and the shim
 * is opened from there. The host then needs neither libxdp1 nor libbpf1, only what those two
 * link: libelf1 and zlib1g.
 */
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { libbpfPath, libxdpPath, shimPath } from "./assets.ts";

/** Return true when the shim is embedded in a compiled executable (Bun's /$bunfs/ paths). */
function shimIsEmbedded(): boolean {
  return shimPath.startsWith("/$bunfs/");
}

/** The files that must sit together in one directory, under these names. */
function shimFiles(): [name: string, bytes: Uint8Array][] {
  return [
    ["libxvs.so", readFileSync(shimPath)],
    ["libxdp.so.1", readFileSync(libxdpPath)],
    ["libbpf.so.1", readFileSync(libbpfPath)],
  ];
}

/**
 * Refuse a directory that someone else could have prepared: a library loaded from it runs as
 * root. It must be a real directory (not a symlink), ours, and closed to group and others.
 */
function checkPrivate(dir: string): void {
  const st = lstatSync(dir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`${dir} is not a private directory of this user (a symlink, another owner, or open to others): remove it`);
  }
}

/** Write `bytes` to dir/name unless it already holds exactly them (temporary file, then rename). */
function place(dir: string, name: string, bytes: Uint8Array): void {
  const target = join(dir, name);
  try {
    const st = lstatSync(target);
    if (st.isFile() && st.size === bytes.length && readFileSync(target).equals(bytes)) return;
  } catch {
    // absent: written below
  }
  const tmp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, "wx", 0o500);
  try {
    writeFileSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, target);
}

/**
 * Write `files` into a private directory under `parent` named by their content, unless they
 * are there already; return the directory.
 * @throws Error naming the directory when it cannot be made or is not private.
 */
export function unpack(parent: string, files: [name: string, bytes: Uint8Array][]): string {
  const hasher = new Bun.CryptoHasher("sha256");
  for (const [name, bytes] of files) hasher.update(name).update(bytes);
  const uid = process.getuid?.() ?? 0;
  const dir = join(parent, `xvs-lib-${uid}-${hasher.digest("hex").slice(0, 16)}`);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  checkPrivate(dir);
  for (const [name, bytes] of files) place(dir, name, bytes);
  return dir;
}

/**
 * Return the path to dlopen: the built shim in a source tree, or the shim unpacked with its
 * libraries (see the file comment) in a compiled executable.
 * @throws Error naming the directory when it cannot be made or is not private.
 */
export function shimLibraryPath(): string {
  if (!shimIsEmbedded()) return shimPath;
  return join(unpack(process.env.XVS_LIB_DIR ?? tmpdir(), shimFiles()), "libxvs.so");
}
