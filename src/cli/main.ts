/** Placeholder until the ipvsadm-compatible client lands (issue 4). */
export async function runAdm(_argv: string[]): Promise<number> {
  return 2;
}
