/**
 * Scheduler-level test bench: a Model compiled into Tables and a SchedView with its own
 * counters, so a scheduler can be driven directly (init/update like FastPath.setTables, then
 * schedule with a synthetic flow row).
 */
import { compile, emptyRoutes } from "../../../src/config/compile.ts";
import { Model } from "../../../src/config/model.ts";
import { MAX_DESTS, MAX_SERVICES, SVC_EPOCH, SVC_FLAGS, SVC_SCHED, SVC_SCHED_EPOCH, SVC_WORDS, SVCF_USED, type Tables } from "../../../src/service/tables.ts";
import { SCHED_STATE_WORDS, type SchedView } from "../../../src/sched/scheduler.ts";
import { SCHEDULER_BY_ID } from "../../../src/sched/registry.ts";
import { FLOW_DST, FLOW_META, FLOW_PORTS, FLOW_SRC, FLOW_WORDS } from "../../../src/wire/flow.ts";
import { parseIp } from "../../../src/service/addr.ts";
import type { DestSpecIn, ServiceSpecIn } from "../../../src/control/schemas.ts";
import { DestSpec, ServiceSpec } from "../../../src/control/schemas.ts";

export const VIP = "198.18.0.100";

export class SchedBench {
  readonly model = new Model();
  t!: Tables;
  view!: SchedView;
  private gen = 0;
  readonly flow = new Int32Array(FLOW_WORDS);
  /** Values returned by view.random, in order (twos); Math.random when empty. */
  readonly randoms: number[] = [];

  /** Compile the model and apply it as FastPath.setTables does. */
  apply(): this {
    const next = compile(this.model, emptyRoutes(), ++this.gen);
    if (!this.view) {
      this.view = {
        t: next,
        active: new Int32Array(MAX_DESTS),
        inactive: new Int32Array(MAX_DESTS),
        persist: new Int32Array(MAX_DESTS),
        overload: new Uint8Array(MAX_DESTS),
        state: new Int32Array(MAX_SERVICES * SCHED_STATE_WORDS),
        random: () => (this.randoms.length ? this.randoms.shift()! : (Math.random() * 0x7fffffff) | 0),
        now: 0,
      };
      for (let s = 0; s < MAX_SERVICES; s++)
        if (next.svc[s * SVC_WORDS + SVC_FLAGS] & SVCF_USED) SCHEDULER_BY_ID[next.svc[s * SVC_WORDS + SVC_SCHED]]?.init(this.view, s);
    } else {
      const prev = this.t;
      this.view.t = next;
      for (let s = 0; s < MAX_SERVICES; s++) {
        const o = s * SVC_WORDS;
        if ((next.svc[o + SVC_FLAGS] & SVCF_USED) === 0) continue;
        const sc = SCHEDULER_BY_ID[next.svc[o + SVC_SCHED]]!;
        if ((prev.svc[o + SVC_FLAGS] & SVCF_USED) === 0 || prev.svc[o + SVC_SCHED_EPOCH] !== next.svc[o + SVC_SCHED_EPOCH]) sc.init(this.view, s);
        else if (prev.svc[o + SVC_EPOCH] !== next.svc[o + SVC_EPOCH]) sc.update(this.view, s, prev);
      }
    }
    this.t = next;
    return this;
  }

  /** Add a TCP service on VIP:port (defaults from the schema); returns its id. */
  service(spec: Partial<ServiceSpecIn> & { scheduler: ServiceSpecIn["scheduler"] }, port = 80): number {
    return this.model.addService(ServiceSpec.parse({ protocol: "tcp", address: VIP, port, ...spec })).id;
  }

  /** Add a real server (ipvsadm -a, NAT); returns its dest id. */
  dest(svcPort: number, address: string, spec: Partial<DestSpecIn> = {}): number {
    return this.model.addDest({ protocol: "tcp", address: VIP, port: svcPort }, DestSpec.parse({ address, forward: "masq", ...spec })).id;
  }

  /** Change a real server (ipvsadm -e). */
  edit(svcPort: number, address: string, spec: Partial<DestSpecIn>): void {
    this.model.editDest({ protocol: "tcp", address: VIP, port: svcPort }, DestSpec.parse({ address, forward: "masq", ...spec }));
  }

  /** Schedule one new TCP connection of src:sport -> dst:dport on service `svc`. */
  pick(svc: number, src = "198.18.1.2", sport = 40000, dst = VIP, dport = 80): number {
    const f = this.flow;
    const s = parseIp(src)!.words,
      d = parseIp(dst)!.words;
    f[FLOW_META] = (((s[1] | s[2] | s[3]) !== 0 || src.includes(":") ? 6 : 4) << 16) | (6 << 8) | 0x02;
    for (let k = 0; k < 4; k++) {
      f[FLOW_SRC + k] = s[k];
      f[FLOW_DST + k] = d[k];
    }
    f[FLOW_PORTS] = (sport << 16) | dport;
    const id = this.t.svc[svc * SVC_WORDS + SVC_SCHED];
    return SCHEDULER_BY_ID[id]!.schedule(this.view, svc, f, 0);
  }

  /** Dest ids of service `svc` in kernel list order. */
  list(svc: number): number[] {
    return this.model.services.find((s) => s.id === svc)!.dests.map((d) => d.id);
  }
}
