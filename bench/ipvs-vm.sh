#!/bin/bash
# Kernel IPVS vs xvs side by side, inside the ipvs-vm qemu guest (its tools directory named by
# IPVSVM_TOOLS or --ipvs-vm-tools DIR: bench/README.md), for hosts whose kernel has no ip_vs.
# Builds dist/xvs, then runs `xvs bench --ipvs-vm` with settings that suit an emulated guest (it
# is ~10-30x slower than the host: longer windows, fewer flows). The report lands in
# bench/results/ (ratios only: the guest is emulated). Extra arguments go to xvs bench (later
# ones win).
#
#   IPVSVM_TOOLS=DIR bench/ipvs-vm.sh                      # as root, ~20-30 min
#   IPVSVM_TOOLS=DIR bench/ipvs-vm.sh --rounds 1 --modes nat
#
# IPVSVM_CACHE selects the guest's cache directory (default ~/.cache/ipvs-vm; share it with no
# one else while a run is going).
set -euo pipefail
cd "$(dirname "$0")/.."
export IPVSVM_CACHE=${IPVSVM_CACHE:-$HOME/.cache/ipvs-vm}
node_modules/.bin/bun run build.ts
exec node_modules/.bin/bun bench/bench.ts --ipvs-vm \
	--name "ipvs-vm-$(date +%Y%m%d-%H%M)" \
	--rounds 3 --duration 3 --warmup 1.5 \
	--modes nat,dr,tun --contenders gen,xvs,ipvs,nft,plain,xskfwd \
	--workloads udp64,udp1514,latency,tcp,flows --flow-counts 20000,100000 --flows-rounds 2 \
	--ping-count 300 --tcp-concurrency 16 \
	--note "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) built on the host" \
	"$@"
