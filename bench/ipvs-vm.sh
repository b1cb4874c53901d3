#!/bin/bash
# Kernel IPVS vs xvs side by side, inside the ipvs-vm qemu guest (its tools directory named by
# IPVSVM_TOOLS or --ipvs-vm-tools DIR: bench/README.md), for hosts whose kernel has no ip_vs.
# Builds dist/xvs, then runs `xvs bench --ipvs-vm` with settings that suit an emulated guest (it
# is ~10-30x slower than the host: longer windows, fewer flows). The report lands in
# bench/results/ (ratios only: the guest is emulated). Extra arguments go to xvs bench (later
# ones win).
#
# The default run is issue 17's: xvs with the flow cache (the default) and with --flow-cache off
# (xvs-*-nocache) beside kernel IPVS and nftables, NAT and DR, one-way 64-byte UDP (DR flows
# cached, NAT flows not: a UDP NAT connection is cached at its first reply), udp64-replied (every
# flow answered once, so NAT flows are cached too) and new TCP connections. The report also says
# how loaded the host was (qemu's vCPUs are host threads) and where the guest's CPUs' time went
# in each full-load window (src/tools/bench/ipvsvm-*.ts).
#
#   IPVSVM_TOOLS=DIR bench/ipvs-vm.sh                      # as root, ~40-70 min on a busy host
#   IPVSVM_TOOLS=DIR bench/ipvs-vm.sh --rounds 1 --workloads udp64-replied
#   IPVSVM_TOOLS=DIR bench/ipvs-vm.sh --modes nat,dr,tun --contenders gen,xvs,ipvs,nft,plain,xskfwd \
#     --workloads udp64,udp1514,latency,tcp,flows --flow-counts 20000,100000   # the Nov 26 run's set
#
# IPVSVM_CACHE selects the guest's cache directory (default ~/.cache/ipvs-vm; share it with no
# one else while a run is going). XVS_COMMIT names the commit in the report when the tree is not
# a git checkout (a copy of one, for example).
set -euo pipefail
cd "$(dirname "$0")/.."
export IPVSVM_CACHE=${IPVSVM_CACHE:-$HOME/.cache/ipvs-vm}
commit=${XVS_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
node_modules/.bin/bun run build.ts
exec node_modules/.bin/bun bench/bench.ts --ipvs-vm \
	--name "ipvs-vm-$(date +%Y%m%d-%H%M)" \
	--rounds 3 --duration 2 --warmup 1 --start-warmup 1.5 \
	--modes nat,dr --contenders xvs,xvs-nocache,ipvs,nft \
	--workloads udp64,udp64-replied,tcp \
	--ping-count 300 --tcp-concurrency 16 \
	--note "commit $commit built on the host; host load average $(cut -d' ' -f1-3 /proc/loadavg) at start" \
	"$@"
