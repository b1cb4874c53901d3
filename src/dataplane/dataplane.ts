/**
 * The dataplane as the control thread drives it: checks the host, loads and attaches the
 * steering program, binds a socket on every rx queue of every interface, shared by the poll
 * workers (queues.ts), and then keeps four things in step: the compiled `Tables` generation of
 * every worker, the steering maps (which packets are ours), the next hops (from the kernel,
 * refreshed on rtnetlink events) and the sockets (a queue that appears later, `ethtool -L`,
 * gets one within a housekeeping pass, 200 ms).
 *
 * Every change is validated before anything is touched; a generation is compiled whole and
 * posted to the workers, which switch between bursts without dropping connections.
 */
import { ConnTable, type ConnTableBuffers } from "../conn/table.ts";
import { ErrorCode, LbError } from "../errors.ts";
import * as abi from "../ffi/abi.ts";
import { SteerProgram } from "../ffi/bpf.ts";
import { NetlinkEvents, operatorLink, type IfAddrInfo } from "../ffi/netlink.ts";
import { adviseHugePages } from "../ffi/mem.ts";
import { defaultGeometry } from "../ffi/xsk.ts";
import { availableParallelism } from "node:os";
import { drainResolve, newResolveRing } from "../nexthop/table.ts";
import { NextHopResolver, type PortInfo, type RouteSnapshot } from "../nexthop/resolver.ts";
import { compile } from "../config/compile.ts";
import type { Dest, Model } from "../config/model.ts";
import type { Tables } from "../service/tables.ts";
import { log } from "../log.ts";
import { adoptedFor, adoptSaved, endStartHold, handOver, holdForSaved } from "./restart.ts";
import { Counters } from "../stats/counters.ts";
import { CTL_EPOCH_F64, CTL_POSTED_GEN, CTL_STOP, CTL_WORDS, type FromWorker, type InitMessage, ticksSince, type WorkerIface } from "./protocol.ts";
import { peersMessages } from "./peers.ts";
import { PathMtu } from "./icmp.ts";
import { FLOW_CACHE_DEFAULT_ENTRIES, FlowCacheControl } from "./flowcache-control.ts";
import { VethXdpWatch } from "./veth-xdp.ts";
import { assignQueues, connShares, describeQueues, planWorkers, type QueueRef, rxQueueCount, workerForNewQueue } from "./queues.ts";

/**
 * How often housekeeping re-reads the rx queue counts (sysfs; no event announces a change): every
 * pass, since until a new queue has its socket RSS may already send it our packets, which go to
 * the kernel (pass_no_socket). Reading a few sysfs directories costs tens of microseconds.
 */
const QUEUE_CHECK_MS = 150; // every 200 ms pass, not soon()'s quick extra ones

export interface DataplaneOptions {
  ifaces: string[];
  /** Poll workers sharing the rx queues (default: the usable cores; clamped and logged: queues.ts). */
  workers?: number;
  /** Connection table capacity of the daemon, split over the workers (queues.ts connShares). */
  connCapacity: number;
  /** "auto" lets the kernel pick zero-copy when the driver has it; "copy" forces copy mode. */
  bindMode: "auto" | "copy" | "zerocopy";
  /** poll() timeout of an idle worker, ms; 0 spins. */
  idleMs: number;
  /** Worker script URL (tests may point elsewhere). */
  workerUrl?: string;
  /** The XDP flow cache (docs/flow-cache.md): on unless false; its map's size. */
  flowCache?: boolean;
  flowCacheEntries?: number;
}

export interface WorkerHandle {
  worker: Worker;
  ctl: Int32Array;
  ctlBuffer: SharedArrayBuffer;
  conns: ConnTable;
  counters: Counters;
  zeroCopy: boolean[];
  /** The (interface, rx queue) pairs this worker has a socket on. */
  queues: QueueRef[];
}

/** Check the host before touching anything: root, interfaces. @throws LbError with the fix. */
export function checkHost(ifaces: string[]): PortInfo[] {
  if (process.getuid?.() !== 0) {
    throw new LbError(ErrorCode.Permission, "xvs run needs root (XDP and AF_XDP need CAP_NET_ADMIN and CAP_BPF): run it as root, e.g. with sudo");
  }
  // bpffs is not needed: xvs loads its own program and never pins (libxdp wants bpffs only
  // for its multi-program dispatcher, which xvs does not use)
  if (ifaces.length === 0) throw new LbError(ErrorCode.Invalid, "no interface given: use --iface IF (once per interface)");
  if (ifaces.length > abi.XVS_MAX_IFACES) throw new LbError(ErrorCode.Invalid, `at most ${abi.XVS_MAX_IFACES} interfaces`);
  if (new Set(ifaces).size !== ifaces.length) throw new LbError(ErrorCode.Invalid, "an interface is given twice");
  return ifaces.map((name) => {
    const l = operatorLink(name);
    if (!l.up) throw new LbError(ErrorCode.Environment, `interface ${name} is down: bring it up with 'ip link set ${name} up'`);
    return { name, ifindex: l.ifindex, mac: l.mac, mtu: l.mtu };
  });
}

function l4Key(family: 4 | 6, words: readonly number[], port: number, proto: number): Uint8Array {
  const k = new Uint8Array(abi.XVS_L4_KEY_SIZE);
  const dv = new DataView(k.buffer);
  for (let i = 0; i < (family === 6 ? 4 : 1); i++) dv.setInt32(abi.XVS_L4_KEY_ADDR_OFF + i * 4, words[i]);
  dv.setUint16(abi.XVS_L4_KEY_PORT_OFF, port);
  k[abi.XVS_L4_KEY_PROTO_OFF] = proto;
  k[abi.XVS_L4_KEY_FAMILY_OFF] = family === 6 ? abi.XVS_FAMILY_V6 : abi.XVS_FAMILY_V4;
  return k;
}

function addrKey(family: 4 | 6, words: readonly number[]): Uint8Array {
  const k = new Uint8Array(abi.XVS_ADDR_KEY_SIZE);
  const dv = new DataView(k.buffer);
  for (let i = 0; i < (family === 6 ? 4 : 1); i++) dv.setInt32(abi.XVS_ADDR_KEY_ADDR_OFF + i * 4, words[i]);
  k[abi.XVS_ADDR_KEY_FAMILY_OFF] = family === 6 ? abi.XVS_FAMILY_V6 : abi.XVS_FAMILY_V4;
  return k;
}

function bytesWords(family: 4 | 6, b: Uint8Array): number[] {
  const w = [0, 0, 0, 0];
  for (let i = 0; i < b.length; i += 4) w[i >> 2] = (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3] | 0;
  return family === 4 ? [w[0], 0, 0, 0] : w;
}

/** A steering map kept equal to a wanted set of entries by writing and deleting the difference. */
class SteerSet {
  private current = new Map<string, { key: Uint8Array; value: number }>();
  constructor(
    private readonly prog: SteerProgram,
    private readonly map: "vips" | "vip_addrs" | "nat_reals" | "local_addrs",
  ) {}
  /** Make the map hold exactly these keys; `value` is the u32 stored (1 unless given). */
  sync(keys: Uint8Array[], values?: number[]): void {
    const want = new Map<string, { key: Uint8Array; value: number }>();
    keys.forEach((k, i) => {
      const h = Buffer.from(k).toString("hex");
      // the same key wanted twice: keep every flag any of them asked for
      want.set(h, { key: k, value: (want.get(h)?.value ?? 0) | (values?.[i] ?? 1) });
    });
    const v = new Uint32Array(1);
    for (const [h, e] of want) {
      if (this.current.get(h)?.value === e.value) continue;
      v[0] = e.value;
      this.prog.update(this.map, e.key, new Uint8Array(v.buffer));
    }
    for (const [h, e] of this.current) if (!want.has(h)) this.prog.delete(this.map, e.key);
    this.current = want;
  }
}

/**
 * The worker script. From source it sits next to this file; in a compiled executable the
 * bundle's root is src/ (build.ts's entrypoints are src/main.ts and src/dataplane/worker.ts) and
 * this code runs from the root, so the worker is ./dataplane/worker.ts there.
 */
function workerUrl(): string {
  const compiled = import.meta.url.startsWith("file:///$bunfs/");
  return new URL(compiled ? "./dataplane/worker.ts" : "./worker.ts", import.meta.url).href;
}

export class Dataplane {
  readonly workers: WorkerHandle[] = [];
  readonly resolver: NextHopResolver;
  readonly epochMs = Date.now();
  /** Connection counts and scheduler state shared by all workers: one per service (dataplane/shared-sched.ts). */
  readonly sharedCounts = Counters.allocateShared();
  private generation = 0;
  private tables: Tables | null = null;
  private readonly resolveRing = newResolveRing();
  private readonly ring = new Int32Array(this.resolveRing);
  private events: NetlinkEvents | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  /** Quick follow-up passes after the kernel was asked to resolve a neighbour (see soon()). */
  private soonTimer: ReturnType<typeof setTimeout> | null = null;
  private soonDelayMs = 0;
  private soonAsks = 0;
  private readonly steer: { vips: SteerSet; vipAddrs: SteerSet; natReals: SteerSet; local: SteerSet };
  private model: Model | null = null;
  /** rx queues of each interface that have a socket (0..n-1); housekeeping compares with sysfs. */
  private served: number[] = [];
  /**
   * One hash seed for every worker's connection table (random per start): a worker whose table
   * misses probes the others' with the hash it already has (conn/peers.ts; a table adopted from
   * a restart keeps its own seed, and is probed with a hash of its own).
   */
  private readonly connSeed = (Math.random() * 0x7fffffff) | 0;
  /** Each interface's queue count as last read (a change is logged once). */
  private seenQueues: number[] = [];
  private queuesCheckedMs = Date.now();
  private attached: PortInfo[] = [];
  private lastRoutes: RouteSnapshot | null = null;
  /** A restart's adopted connections, by saved worker (restart.ts); null once the workers have them. */
  private adopted: Int32Array[] | null = null;
  /** How many workers this start runs: the saved workers' records are folded over them. */
  private adoptWorkers = 1;
  /** The XDP flow cache's switch and table mirror (flowcache-control.ts); the next-hop table it mirrors. */
  readonly flowCache: FlowCacheControl;
  /** veths whose peers drop the frames the flow cache sends (veth-xdp.ts); null with the cache off. */
  vethXdp: VethXdpWatch | null = null;
  private readonly nh: Int32Array;
  /** Path MTUs the workers learn from ICMP errors (icmp.ts), shared by all and read by the flow cache's mirror. */
  private readonly pmtu = PathMtu.allocate();

  private constructor(
    readonly prog: SteerProgram,
    readonly ports: PortInfo[],
    readonly opts: DataplaneOptions,
  ) {
    this.resolver = new NextHopResolver(ports);
    this.nh = new Int32Array(this.resolver.nhBuffer);
    this.flowCache = new FlowCacheControl(prog, opts.flowCache !== false, opts.flowCacheEntries ?? FLOW_CACHE_DEFAULT_ENTRIES, this.pmtu, () =>
      ticksSince(this.epochMs),
    );
    this.steer = {
      vips: new SteerSet(prog, "vips"),
      vipAddrs: new SteerSet(prog, "vip_addrs"),
      natReals: new SteerSet(prog, "nat_reals"),
      local: new SteerSet(prog, "local_addrs"),
    };
  }

  /**
   * Check the host, load and attach the steering program, start the workers with `model`'s
   * configuration. On any failure everything done so far is undone.
   * @throws LbError naming the cause and the fix.
   */
  static async start(opts: DataplaneOptions, model: Model): Promise<Dataplane> {
    const ports = checkHost(opts.ifaces);
    if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 1 || opts.workers > abi.XVS_MAX_QUEUES))
      throw new LbError(ErrorCode.Invalid, `workers must be a whole number in 1..${abi.XVS_MAX_QUEUES}`);
    const prog = await SteerProgram.load({ flowEntries: opts.flowCacheEntries ?? FLOW_CACHE_DEFAULT_ENTRIES });
    const dp = new Dataplane(prog, ports, opts);
    try {
      await dp.bringUp(model);
      return dp;
    } catch (e) {
      await dp.stop();
      throw e;
    }
  }

  private async bringUp(model: Model): Promise<void> {
    const { prog, ports, opts } = this;
    ports.forEach((p, i) => {
      const key = new Uint32Array([p.ifindex]);
      const base = new Uint32Array([i * abi.XVS_MAX_QUEUES]);
      prog.update("if_slots", new Uint8Array(key.buffer), new Uint8Array(base.buffer));
    });
    this.model = model;
    this.tables = this.compileNow(model);
    this.syncSteering(model);
    // a restart: hold mode until our sockets are bound, when a table was saved (restart.ts)
    holdForSaved(prog);
    // attach last: until the sockets exist, the program passes our packets to the kernel anyway
    for (const p of ports) {
      prog.attach(p.ifindex, p.name);
      this.attached.push(p);
    }
    // veths whose peers would drop XDP frames are marked before the first cached packet (veth-xdp.ts);
    // after the attach, so that a start refused there says only why
    if (this.flowCache.enabled)
      this.vethXdp = new VethXdpWatch(
        ports,
        (port, on) => this.flowCache.setNoXdp(port, on),
        (port) => this.flowCache.setTxRedirect(port),
      );
    // attached: the saved connections are ours to take (a start that failed leaves them)
    this.adopted = adoptSaved(
      prog,
      this.tables,
      ports.map((p) => p.name),
    );
    const names = ports.map((p) => p.name);
    this.seenQueues = ports.map((p) => rxQueueCount(p.name, p.ifindex));
    const plan = planWorkers(opts.workers, availableParallelism(), this.seenQueues, names);
    for (const a of plan.adjustments) log("warn", a);
    this.served = plan.served;
    const owned = assignQueues(plan.workers, plan.served);
    log("info", "rx queues and workers", {
      queues: Object.fromEntries(names.map((n, i) => [n, this.seenQueues[i]])),
      workers: plan.workers,
      distribution: owned.map((qs) => describeQueues(qs, names)),
    });
    this.adoptWorkers = owned.length;
    const conn = connShares(opts.connCapacity, owned.length);
    for (const a of conn.adjustments) log("warn", a);
    for (let w = 0; w < owned.length; w++) this.workers.push(await this.startWorker(w, owned[w], conn.shares[w]));
    // every worker looks up the others' connection tables on a miss (NAT replies on another queue: conn/peers.ts)
    if (this.workers.length > 1) {
      const msgs = peersMessages(
        this.workers.map((w) => w.conns.buffers),
        this.pmtu,
      );
      for (let i = 0; i < msgs.length; i++) this.workers[i].worker.postMessage(msgs[i]);
    }
    this.adopted = endStartHold(prog, this.adopted, this.workers.length);
    this.events = new NetlinkEvents();
    this.timer = setInterval(() => this.housekeeping(), 200);
  }

  private workerIface(r: QueueRef): WorkerIface {
    return { name: this.ports[r.iface].name, queue: r.queue, slot: r.iface * abi.XVS_MAX_QUEUES + r.queue };
  }

  private startWorker(index: number, queues: QueueRef[], connCapacity: number): Promise<WorkerHandle> {
    const ctlBuffer = new SharedArrayBuffer(CTL_WORDS * 4);
    const ctl = new Int32Array(ctlBuffer);
    new Float64Array(ctlBuffer)[CTL_EPOCH_F64] = this.epochMs;
    Atomics.store(ctl, CTL_POSTED_GEN, this.tables!.generation);
    const connBuffers = ConnTable.allocate(connCapacity);
    // huge pages under the records and the index, before the worker first touches them
    adviseHugePages(connBuffers.records);
    adviseHugePages(connBuffers.index);
    const conns = new ConnTable(connCapacity, this.connSeed, connBuffers);
    const counters = new Counters(Counters.allocate(this.sharedCounts));
    const url = this.opts.workerUrl ?? workerUrl();
    const worker = new Worker(url);
    const bindFlags =
      abi.XVS_XDP_BIND_NEED_WAKEUP |
      (this.opts.bindMode === "copy" ? abi.XVS_XDP_BIND_COPY : this.opts.bindMode === "zerocopy" ? abi.XVS_XDP_BIND_ZEROCOPY : 0);
    const init: InitMessage = {
      type: "init",
      worker: index,
      ifaces: queues.map((r) => this.workerIface(r)),
      xskmapFd: this.prog.fd("xsks"),
      bindFlags,
      geometry: defaultGeometry(queues.length),
      idleMs: this.opts.idleMs,
      ctl: ctlBuffer,
      conns: conns.buffers as ConnTableBuffers,
      counters: counters.buffers,
      nexthops: this.resolver.nhBuffer,
      resolveRing: this.resolveRing,
      tables: this.tables!,
      adopt: adoptedFor(this.adopted, this.workers.length, this.adoptWorkers),
      flowCache: this.flowCache.workerInit(),
      pmtu: this.pmtu,
    };
    return new Promise((resolve, reject) => {
      worker.onmessage = (ev: MessageEvent<FromWorker>) => {
        const m = ev.data;
        if (m.type === "ready") {
          const h: WorkerHandle = { worker, ctl, ctlBuffer, conns, counters, zeroCopy: m.zeroCopy, queues: [...queues] };
          worker.onmessage = (e: MessageEvent<FromWorker>) => this.fromWorker(h, index, e.data);
          resolve(h);
        } else if (m.type === "error") {
          worker.terminate();
          reject(
            new LbError(
              ErrorCode.Environment,
              `worker ${index} (${describeQueues(
                queues,
                this.ports.map((p) => p.name),
              )}): ${m.message}`,
            ),
          );
        }
      };
      worker.onerror = (ev) => reject(new LbError(ErrorCode.System, `dataplane worker failed: ${ev.message}`));
      worker.postMessage(init);
    });
  }

  /** Messages a running worker sends: the answer to addQueues. */
  private fromWorker(h: WorkerHandle, index: number, m: FromWorker): void {
    if (m.type !== "queuesAdded") return;
    const names = this.ports.map((p) => p.name);
    for (const a of m.added) {
      const r = { iface: names.indexOf(a.name), queue: a.queue };
      h.queues.push(r);
      this.served[r.iface] = Math.max(this.served[r.iface], r.queue + 1);
    }
    if (m.added.length > 0)
      log("info", "rx queues bound", {
        worker: index,
        added: describeQueues(
          m.added.map((a) => ({ iface: names.indexOf(a.name), queue: a.queue })),
          names,
        ),
        queues: describeQueues(h.queues, names),
      });
    for (const e of m.errors) log("error", "cannot bind a new rx queue: its packets go to the kernel (pass_no_socket)", { worker: index, error: e });
  }

  /**
   * Re-read every interface's rx queue count (every housekeeping pass, 200 ms). A queue that
   * appeared gets a socket in the worker with the fewest queues of that interface (queues.ts);
   * the change is logged. The kernel refuses to take away a queue an AF_XDP socket is bound to
   * (ethtool's channels check), so fewer queues is only logged.
   */
  private checkQueues(): void {
    const names = this.ports.map((p) => p.name);
    this.ports.forEach((p, i) => {
      let n: number;
      try {
        n = rxQueueCount(p.name, p.ifindex);
      } catch {
        return; // the interface went away: netlink events and the resolver say so
      }
      if (n === this.seenQueues[i]) return;
      const was = this.seenQueues[i];
      this.seenQueues[i] = n;
      const want = Math.min(n, abi.XVS_MAX_QUEUES);
      if (want <= this.served[i]) {
        log("warn", "rx queue count changed", { iface: p.name, from: was, to: n, served: this.served[i] });
        return;
      }
      const owned = this.workers.map((w) => [...w.queues]);
      const plan = new Map<number, QueueRef[]>();
      for (let q = this.served[i]; q < want; q++) {
        const w = workerForNewQueue(owned, i);
        owned[w].push({ iface: i, queue: q });
        plan.set(w, [...(plan.get(w) ?? []), { iface: i, queue: q }]);
      }
      log(n > abi.XVS_MAX_QUEUES ? "warn" : "info", "rx queue count changed: binding the new queues", {
        iface: p.name,
        from: was,
        to: n,
        ...(n > abi.XVS_MAX_QUEUES ? { unserved: `${abi.XVS_MAX_QUEUES}..${n - 1} (at most ${abi.XVS_MAX_QUEUES} queues per interface)` } : {}),
        distribution: [...plan].map(([w, qs]) => `worker ${w}: ${describeQueues(qs, names)}`),
      });
      // served moves when the worker confirms (fromWorker); until then, do not ask twice
      this.served[i] = want;
      for (const [w, qs] of plan) this.workers[w].worker.postMessage({ type: "addQueues", ifaces: qs.map((r) => this.workerIface(r)) });
    });
  }

  private compileNow(model: Model): Tables {
    const dests = model.allDests().map((d) => ({ id: d.id, family: d.addr.family, words: d.addr.words }));
    const routes = this.resolver.snapshot(dests);
    this.lastRoutes = routes;
    const t = compile(model, routes, ++this.generation);
    this.flowCache.tables(t, this.nh); // every generation reaches the XDP flow cache's arrays
    return t;
  }

  /** Steering maps: virtual services, their addresses, NAT real servers, our own addresses. */
  private syncSteering(model: Model): void {
    const vips: Uint8Array[] = [],
      vipAddrs: Uint8Array[] = [],
      reals: Uint8Array[] = [];
    const seenAddr = new Set<string>();
    for (const s of model.services) {
      if (!s.addr) continue; // fwmark services cannot be matched in XDP (no skb mark there)
      vips.push(l4Key(s.family, s.addr.words, s.port, s.proto));
      const a = addrKey(s.family, s.addr.words);
      const h = Buffer.from(a).toString("hex");
      if (!seenAddr.has(h)) {
        seenAddr.add(h);
        vipAddrs.push(a);
      }
    }
    const realValues: number[] = [];
    // a NAT real server: its (addr, port) for replies, and its (addr, 0) for the later fragments of
    // replies; a port-0 service's real server answers from any port, which its port-0 entry says
    const addReal = (d: Dest, proto: number): void => {
      reals.push(l4Key(d.addr.family, d.addr.words, d.port, proto));
      realValues.push(d.port === 0 ? abi.XVS_NAT_REAL | abi.XVS_NAT_REAL_ANY_PORT : abi.XVS_NAT_REAL);
      if (d.port !== 0) {
        reals.push(l4Key(d.addr.family, d.addr.words, 0, proto));
        realValues.push(abi.XVS_NAT_REAL);
      }
    };
    for (const s of model.services) {
      if (!s.proto) continue;
      for (const d of s.dests) if (d.spec.forward === "masq") addReal(d, s.proto);
    }
    // trashed NAT dests keep their connections: their replies must still come to us
    for (const d of model.trash) {
      const svc = model.services.find((s) => s.key === d.svcKey);
      const proto = svc?.proto ?? (d.svcKey.startsWith("tcp") ? 6 : d.svcKey.startsWith("udp") ? 17 : d.svcKey.startsWith("sctp") ? 132 : 0);
      if (d.spec.forward === "masq" && proto) addReal(d, proto);
    }
    this.steer.vips.sync(vips);
    this.steer.vipAddrs.sync(vipAddrs);
    this.steer.natReals.sync(reals, realValues);
    this.syncLocal(this.lastRoutes?.localAddrs ?? []);
  }

  private syncLocal(addrs: IfAddrInfo[]): void {
    this.steer.local.sync(addrs.map((a) => addrKey(a.family, bytesWords(a.family, a.addr))));
  }

  /** Compile `model` into a new generation and hand it to every worker; update steering. */
  apply(model: Model): Tables {
    this.model = model;
    const t = this.compileNow(model);
    // steering first for additions would steer packets before the workers know the service;
    // post the tables first: a packet for a service the worker does not know yet is counted
    this.post(t);
    this.syncSteering(model);
    this.soon();
    return t;
  }

  private post(t: Tables): void {
    this.tables = t;
    for (const w of this.workers) {
      w.worker.postMessage({ type: "tables", tables: t });
      Atomics.store(w.ctl, CTL_POSTED_GEN, t.generation);
    }
  }

  /** The generation the workers were last given. */
  current(): Tables {
    return this.tables!;
  }

  /** Periodic: worker resolve requests, kernel route/neighbour changes. */
  private housekeeping(): void {
    const now = Date.now();
    if (now - this.queuesCheckedMs >= QUEUE_CHECK_MS) {
      this.queuesCheckedMs = now;
      this.checkQueues();
    }
    for (const r of drainResolve(this.ring)) this.resolver.requestResolve(r.port, r.family === 6 ? 6 : 4, r.words);
    this.flowCache.nexthops(this.nh); // MACs the resolver changed reach the cached flows
    this.flowCache.pathMtus(); // path MTUs the workers learned (or that expired) reach the cached TUN flows
    this.vethXdp?.check(); // a veth whose peer drops XDP frames: its flows go to AF_XDP
    if (this.events && this.events.drain() > 0 && this.model) {
      const t = this.compileNow(this.model);
      this.post(t);
      this.syncLocal(this.lastRoutes?.localAddrs ?? []);
    }
    this.soon();
  }

  /**
   * After the kernel was asked to resolve a neighbour (a real server just added, an address a
   * worker met), look for the answer again after 1, 2, 4 ... 128 ms rather than at the next
   * 200 ms pass: until the MAC is known its packets are dropped (drop_neighbour; the kernel
   * would queue them, AF_XDP cannot), so a client's first SYN to a new real server would
   * otherwise wait for its retransmission, a second later.
   */
  private soon(): void {
    if (this.resolver.asks !== this.soonAsks) {
      this.soonAsks = this.resolver.asks;
      this.soonDelayMs = 1;
    }
    if (this.soonTimer || this.soonDelayMs === 0 || this.soonDelayMs > 128 || !this.timer) return;
    const delay = this.soonDelayMs;
    this.soonDelayMs *= 2;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      this.housekeeping();
    }, delay);
  }

  /** Return the XDP program's counters (XVS_XDP_* order). */
  xdpStats(): number[] {
    return this.prog.stats();
  }

  /**
   * Stop the workers, close the sockets, detach and unload the program. Safe to call twice.
   * `handOver` (SIGTERM, SIGINT: a restart may follow): save the connection table and leave the
   * program attached in hold mode instead of detaching it (restart.ts), when there are
   * connections to keep. Returns true when it did.
   */
  async stop(opts: { handOver?: boolean } = {}): Promise<boolean> {
    const hold = opts.handOver === true && this.attached.length > 0 && this.tables !== null;
    if (hold) handOver.begin(this.prog);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.soonTimer) clearTimeout(this.soonTimer);
    this.soonTimer = null;
    this.events?.close();
    this.events = null;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const done = setTimeout(() => {
              w.worker.terminate();
              resolve();
            }, 2000);
            w.worker.onmessage = (ev: MessageEvent<FromWorker>) => {
              if (ev.data.type === "stopped") {
                clearTimeout(done);
                w.worker.terminate();
                resolve();
              }
            };
            Atomics.store(w.ctl, CTL_STOP, 1);
          }),
      ),
    );
    const kept =
      hold &&
      handOver.save(
        this.prog,
        this.workers.map((w) => w.conns),
        this.tables!,
        this.resolver.nh,
        this.ports.map((p) => p.name),
        this.epochMs,
      );
    this.workers.length = 0;
    if (!kept) for (const p of this.attached) this.prog.detach(p.ifindex);
    this.attached = [];
    this.prog.close();
    return kept;
  }
}
