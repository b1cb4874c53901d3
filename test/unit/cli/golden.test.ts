/**
 * Golden tests: every sequence of test/kernel/ipvsadm/sequences.txt was run against real kernel
 * IPVS with ipvsadm 1.31 (Debian 6.1 kernel in the ipvs-vm guest; see README.md there) and its
 * stdout, stderr and exit code recorded in transcripts.json. Here the same command lines run
 * through runAdm against an in-process xvs daemon and must give the same bytes, trailing spaces
 * included.
 *
 * Traffic sequences (`!` steps made real connections in the guest) cannot be replayed in
 * process: before their listings the test loads the counters, rates and connections the guest
 * showed into the daemon's stand-in dataplane (from the guest's own --exact listings), so what
 * is compared is everything xvs adds on top: zeroing, sorting, formatting, names.
 *
 * Where xvs differs on purpose, DEVIATIONS says how and why.
 */
import { describe, expect, test } from "bun:test";
import { XVS_HELP_NOTE } from "../../../src/cli/help.ts";
import { parseCommand, type Entry } from "../../../src/cli/parse.ts";
import {
  CF_ASSURED,
  CF_FWD_MASK,
  CF_TEMPLATE,
  CF_V6,
  CONN_CADDR,
  CONN_CPORT_VPORT,
  CONN_DADDR,
  CONN_DPORT,
  CONN_EXPIRES,
  CONN_FLAGS,
  CONN_PROTO_STATE,
  CONN_VADDR,
  CONN_WORDS,
} from "../../../src/conn/table.ts";
import { TCP_STATE_NAMES } from "../../../src/conn/state.ts";
import { destId } from "../../../src/control/ids.ts";
import { FWMARK_UNSUPPORTED_MESSAGE } from "../../../src/control/schemas.ts";
import { serviceName } from "../../../src/control/views.ts";
import { ipText, parseIp } from "../../../src/service/addr.ts";
import { DEST_TRAFFIC_BASE, TS_WORDS } from "../../../src/stats/counters.ts";
import { goldenNames, loadTranscripts, NOW_MS, startXvs, type AdmStep, type Sequence, type Xvs } from "./fixture.ts";

const { sequences } = loadTranscripts();
const names = goldenNames();

type Result = { stdout: string; stderr: string; exit: number };

/** Split a listing into its header (up to the title) and one block per service. */
function serviceBlocks(text: string): { head: string; blocks: string[] } {
  const lines = text.split("\n");
  const head: string[] = [];
  const blocks: string[] = [];
  for (const line of lines) {
    if (line && !line.startsWith(" ") && !line.startsWith("IP Virtual") && !line.startsWith("Prot ")) blocks.push(`${line}\n`);
    else if (blocks.length && line.startsWith("  -> ") && !line.startsWith("  -> RemoteAddress")) blocks[blocks.length - 1] += `${line}\n`;
    else head.push(line);
  }
  return { head: head.join("\n"), blocks };
}

/**
 * Deliberate differences from the guest. Each returns what xvs must print instead, or checks
 * the step itself and returns true.
 */
const DEVIATIONS: Record<string, (step: AdmStep, index: number, got: Result) => Result | true> = {
  // -h: the usage text ends with one note on what xvs does not support (the sync daemon)
  "help-and-version": (s) => ({
    ...s,
    stdout: s.stdout && s.argv[0] !== "-L" && !s.argv.includes("-v") && !s.argv.includes("--version") ? s.stdout + XVS_HELP_NOTE : s.stdout,
  }),
  // --nosort with several services: the kernel dumps its service hash table, whose order depends
  // on a per-namespace salt (the netns pointer), so it cannot be reproduced; xvs lists services
  // in creation order. Same blocks, same header, same dest order inside each block.
  "list-formats-static": (s, _i, got) => {
    if (!s.argv.includes("--nosort")) return s;
    const a = serviceBlocks(s.stdout),
      b = serviceBlocks(got.stdout);
    expect(b.head).toBe(a.head);
    expect([...b.blocks].sort()).toEqual([...a.blocks].sort());
    expect(got.exit).toBe(s.exit);
    return true;
  },
  // -R: ipvsadm applies line by line and goes on after a kernel error (exit status of the last
  // line); xvs applies the table changes of -R all or nothing, so a failing line leaves the
  // table as it was and the exit status is 255.
  // Likewise a line that does not parse stops -R before anything changed (ipvsadm has applied
  // the lines before it): the guest's later listings show services xvs never added.
  "restore-kernel-error": (s, i) => {
    if (i === 1) return { stdout: "", stderr: "Service already exists\n", exit: 255 };
    if (i === 2 || i === 4) return { ...s, stdout: s.stdout.split("\n").slice(0, 4).join("\n") + "\n" };
    return s;
  },
};

// ---- firewall-mark services: refused by xvs ----

/**
 * xvs refuses to create firewall-mark services (its XDP program sees packets before any mark is
 * set, so they would never match: FWMARK_UNSUPPORTED_MESSAGE). The guest's sequences that made
 * some are replayed with what xvs answers instead:
 * - the line that creates one (-A/-E with -f) is refused with that message, exit 255, unless
 *   ipvsadm's own parse refused the line first (exit 2, same bytes as the guest);
 * - a line naming a fwmark service gets the kernel's answer for a service that does not exist
 *   (as the guest printed it elsewhere: -a/-e/-d "Service not defined", -D/-Z "No such service"
 *   exit 255, -L "No such service" exit 1);
 * - listings and saves show everything else exactly as the guest did, without the FWM blocks;
 * - -R input is fed without its fwmark lines (what an operator does after the refusal; a -R
 *   with a fwmark line is refused whole, tested in cli.test.ts).
 * The FWM formats themselves (mark 4294967295 as -1, "IPv6", their sort position) stay covered
 * by format unit tests in cli.test.ts.
 */
function namesFwmark(argv: string[]): boolean {
  return argv.includes("-f") || argv.includes("--fwmark-service");
}

/** Drop the FWM service blocks of a listing (-L formats) or the -f lines of a save (-S). */
function withoutFwmarkBlocks(text: string): string {
  const keep: string[] = [];
  let inFwm = false;
  for (const line of text.split("\n")) {
    if (/^-[Aa] -f /.test(line)) continue;
    if (line.startsWith("FWM  ")) {
      inFwm = true;
      continue;
    }
    if (inFwm && line.startsWith("  -> ") && !line.startsWith("  -> RemoteAddress")) continue;
    inFwm = false;
    keep.push(line);
  }
  return keep.join("\n");
}

function fwmarkRefused(seq: Sequence, step: AdmStep): { stdin?: string; want: Result } {
  let parsed: Entry;
  try {
    parsed = parseCommand(step.argv, "ipvsadm", names);
  } catch {
    return { want: step }; // ipvsadm's parse refused the line: nothing reaches a service
  }
  const kernel = (stderr: string, exit = 255): { want: Result } => ({ want: { stdout: "", stderr, exit } });
  if (parsed.cmd === "restore") {
    const stdin = (step.stdin ?? "")
      .split("\n")
      .filter((l) => !/(^|\s)-f\s/.test(l))
      .join("\n");
    return { stdin, want: { ...step, stdout: withoutFwmarkBlocks(step.stdout) } };
  }
  if (!namesFwmark(step.argv) || step.exit === 2) return { want: { ...step, stdout: withoutFwmarkBlocks(step.stdout) } };
  switch (parsed.cmd) {
    case "add-service":
    case "edit-service":
      return kernel(`${FWMARK_UNSUPPORTED_MESSAGE}\n`);
    case "add-server":
    case "edit-server":
    case "delete-server":
      return kernel("Service not defined\n");
    case "delete-service":
    case "zero":
      return kernel("No such service\n");
    case "list":
      return kernel("No such service\n", 1);
    default:
      throw new Error(`${seq.name}: ${step.argv.join(" ")}: no rule for a fwmark service here`);
  }
}

// ---- loading what the guest showed into the stand-in dataplane ----

/** Parse the service/dest lines of a -Ln listing: name -> numbers, dest lines under their service. */
function parseListing(text: string, svcWidth: number): { svc: string; nums: number[]; dests: { id: string; nums: number[] }[] }[] {
  const out: { svc: string; nums: number[]; dests: { id: string; nums: number[] }[] }[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("IP Virtual") || line.startsWith("Prot ") || line.startsWith("  -> RemoteAddress")) continue;
    if (line.startsWith("  -> ")) {
      const f = line.slice(5).trim().split(/\s+/);
      const nums = f
        .slice(1)
        .filter((x) => /^\d+$/.test(x))
        .map(Number);
      out[out.length - 1].dests.push({ id: f[0], nums });
    } else {
      const name = svcWidth
        ? line.slice(0, svcWidth).trim()
        : line
            .split(" ")
            .slice(0, line.startsWith("FWM") ? 3 : 3)
            .join(" ");
      const nums = svcWidth ? line.slice(svcWidth).trim().split(/\s+/).map(Number) : [];
      out.push({ svc: name.replace(/ +/g, " "), nums, dests: [] });
    }
  }
  return out;
}

function findStep(seq: Sequence, from: number, want: (argv: string[]) => boolean): AdmStep | undefined {
  return seq.steps.slice(from).find((s): s is AdmStep => s.kind === "adm" && want(s.argv));
}

const is = (argv: string[], ...flags: string[]) => argv.length === flags.length && flags.every((f) => argv.includes(f));

/** Set counters, rates and connection counts from the guest's listings that follow step `from`. */
function injectTraffic(x: Xvs, seq: Sequence, from: number): void {
  const services = x.daemon.model.services;
  const byName = (n: string) => services.find((s) => serviceName(s).replace(/ +/g, " ") === n);
  const w = x.dataplane.workers[0].counters;
  const stats = findStep(seq, from, (a) => is(a, "-Ln", "--stats", "--exact"));
  for (const row of stats ? parseListing(stats.stdout, 33) : []) {
    const s = byName(row.svc);
    if (!s) continue;
    row.nums.forEach((v, k) => {
      w.traffic[s.id * TS_WORDS + k] = v;
    });
    for (const d of row.dests) {
      const dest = s.dests.find((x) => destId(ipText(x.addr), x.port) === d.id)!;
      d.nums.forEach((v, k) => {
        w.traffic[DEST_TRAFFIC_BASE + dest.id * TS_WORDS + k] = v;
      });
    }
  }
  const rates = findStep(seq, from, (a) => is(a, "-Ln", "--rate", "--exact"));
  for (const row of rates ? parseListing(rates.stdout, 33) : []) {
    const s = byName(row.svc);
    if (!s) continue;
    const r = (n: number[]) => ({ cps: n[0], inpps: n[1], outpps: n[2], inbps: n[3], outbps: n[4] });
    x.daemon.stats.setRates({ service: s }, r(row.nums));
    for (const d of row.dests) x.daemon.stats.setRates({ dest: s.dests.find((y) => destId(ipText(y.addr), y.port) === d.id)! }, r(d.nums));
  }
  const plain = findStep(seq, from, (a) => is(a, "-Ln"));
  const pconn = findStep(seq, from, (a) => is(a, "-Ln", "--persistent-conn"));
  for (const s of services) {
    const rowOf = (text: string | undefined) => parseListing(text ?? "", 0).find((r) => r.svc.startsWith(serviceName(s).replace(/ +/g, " ")));
    for (const d of rowOf(plain?.stdout)?.dests ?? []) {
      const dest = s.dests.find((y) => destId(ipText(y.addr), y.port) === d.id)!;
      // Forward Weight ActiveConn InActConn
      w.active[dest.id] = d.nums[1];
      w.inactive[dest.id] = d.nums[2];
    }
    for (const d of rowOf(pconn?.stdout)?.dests ?? []) {
      const dest = s.dests.find((y) => destId(ipText(y.addr), y.port) === d.id)!;
      // Weight PersistConn ActiveConn InActConn
      w.persist[dest.id] = d.nums[1];
    }
  }
}

/** "198.18.0.100:http" / "[2001:db8::1]:80" -> address words and port. */
function endpoint(text: string, proto: number): { v6: boolean; words: number[]; port: number } {
  const m = /^\[?([^\]]+?)\]?:([^:\]]+)$/.exec(text)!;
  const a = parseIp(m[1])!;
  const port = /^\d+$/.test(m[2]) ? Number(m[2]) : names.serviceToPort(m[2], proto);
  return { v6: a.family === 6, words: a.words, port };
}

/** Fill the connection table with the rows a -Lc listing of the guest shows, in its order. */
function injectConns(x: Xvs, listing: string): void {
  const t = x.dataplane.resetConns();
  const nowTick = NOW_MS / 10;
  for (const line of listing.split("\n").slice(2)) {
    if (!line) continue;
    const [protoName, expire, state, src, vip, dst] = line.split(/\s+/);
    const proto = protoName === "TCP" ? 6 : protoName === "UDP" ? 17 : protoName === "SCTP" ? 132 : 0;
    const c = endpoint(src, proto),
      v = endpoint(vip, proto),
      d = endpoint(dst, proto);
    const id = t.alloc();
    const o = id * CONN_WORDS;
    const template = state === "NONE" || state === "ASSURED";
    t.rec[o + CONN_FLAGS] |= (template ? CF_TEMPLATE : 0) | (state === "ASSURED" ? CF_ASSURED : 0) | (c.v6 ? CF_V6 : 0) | (0 & CF_FWD_MASK);
    t.rec[o + CONN_PROTO_STATE] = (proto << 8) | (proto === 6 && !template ? TCP_STATE_NAMES.indexOf(state) : 0);
    for (let k = 0; k < 4; k++) {
      t.rec[o + CONN_CADDR + k] = c.words[k];
      t.rec[o + CONN_VADDR + k] = v.words[k];
      t.rec[o + CONN_DADDR + k] = d.words[k];
    }
    t.rec[o + CONN_CPORT_VPORT] = (c.port << 16) | v.port;
    t.rec[o + CONN_DPORT] = d.port;
    const [mm, ss] = expire.split(":").map(Number);
    t.rec[o + CONN_EXPIRES] = nowTick + (mm * 60 + ss) * 100 + 50;
  }
}

describe("ipvsadm golden transcripts from kernel IPVS", () => {
  test("cover at least 30 command sequences and every listing format", () => {
    expect(sequences.length).toBeGreaterThanOrEqual(30);
    const argvs = sequences.flatMap((s) => s.steps.filter((x): x is AdmStep => x.kind === "adm").map((x) => x.argv.join(" ")));
    for (const f of [
      "--stats",
      "--rate",
      "--thresholds",
      "--persistent-conn",
      "--tun-info",
      "--exact",
      "--nosort",
      "-Lnc",
      "-Lc",
      "--timeout",
      "--daemon",
      "-Sn",
      "-S",
    ]) {
      expect(argvs.some((a) => a.split(" ").includes(f))).toBe(true);
    }
  });

  for (const seq of sequences) {
    test(`sequence ${seq.name} prints what ipvsadm printed`, async () => {
      const x = startXvs(names);
      let afterShell = false;
      for (const [i, st] of seq.steps.entries()) {
        if (st.kind === "sh") {
          afterShell = true;
          continue;
        }
        if (afterShell) {
          injectTraffic(x, seq, i);
          afterShell = false;
        }
        if (st.argv.some((a) => /^-L?n?c$|^-Ln?c$|^-c$/.test(a) || a === "--connection")) injectConns(x, st.stdout);
        const fw = fwmarkRefused(seq, st);
        const got = await x.adm(st.argv, fw.stdin ?? st.stdin);
        const dev = DEVIATIONS[seq.name]?.({ ...st, ...fw.want }, i, got);
        if (dev === true) continue;
        const want = dev ?? fw.want;
        expect({ step: i + 1, argv: st.argv.join(" "), ...got }).toEqual({
          step: i + 1,
          argv: st.argv.join(" "),
          stdout: want.stdout,
          stderr: want.stderr,
          exit: want.exit,
        });
      }
    });
  }
});
