// Sources embedded as text by `xvs bench` (the C reference forwarder and the header it includes):
// `import src from "../../../bench/xskfwd.c" with { type: "text" }` yields the file's contents.
declare module "*.c" {
  const text: string;
  export default text;
}
declare module "*.h" {
  const text: string;
  export default text;
}
