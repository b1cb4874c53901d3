// Native artifacts are imported as files: in a compiled executable Bun embeds them and the
// import yields a path it can open (see src/ffi/assets.ts).
declare module "*.so" {
  const path: string;
  export default path;
}
declare module "*.bpf.o" {
  const path: string;
  export default path;
}
declare module "*.so.1" {
  const path: string;
  export default path;
}
