#!/usr/bin/env bash
# Install what xvs needs on a fresh Debian 12 machine, as root. Idempotent and quick when all is there.
#   bash .ci/setup.sh            install only
#   bash .ci/setup.sh demo [...] install, build dist/xvs, run the demo lab (extra args go to `xvs demo`)
#   bash .ci/setup.sh test [...] install, build, run the whole test suite (extra args go to `bun test`)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	say "xvs needs root (XDP, AF_XDP, network namespaces): run this as root, e.g. with sudo"
	exit 1
fi

# Debian packages: command or file that proves the package is there, then the package name.
need=()
check() { [ -e "$1" ] || command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check /usr/include/xdp/xsk.h libxdp-dev
check /usr/include/bpf/libbpf.h libbpf-dev
check clang clang
check llc llvm
check gcc gcc
check /usr/include/linux/if_xdp.h linux-libc-dev
check ip iproute2
check nft nftables
check ethtool ethtool
check tcpdump tcpdump
check node nodejs
check npm npm
check curl curl
check python3 python3
check ping iputils-ping
check modprobe kmod
check perf linux-perf
check taskset util-linux
if [ ${#need[@]} -gt 0 ]; then
	say "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || say "apt-get update failed; trying the cached package lists"
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# bpffs: libxdp pins its state there.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
	say "mounting bpffs at /sys/fs/bpf"
	mkdir -p /sys/fs/bpf
	mount -t bpf bpf /sys/fs/bpf
fi

# Bun comes from the npm registry, pinned by package.json; npm ci is skipped when nothing changed.
stamp=node_modules/.xvs-install-stamp
if [ ! -x node_modules/.bin/bun ] || [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
	say "installing npm dependencies (Bun included)"
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
	touch "$stamp"
fi
export PATH="$PWD/node_modules/.bin:$PATH"

action=${1:-}
[ $# -gt 0 ] && shift
case "$action" in
"") say "ready: $(bun --version) bun, $(clang --version | head -1)" ;;
demo)
	bun run build.ts
	exec ./dist/xvs demo "$@"
	;;
test)
	bun run build.ts
	exec bun test "$@"
	;;
*) say "unknown action '$action' (expected: demo, test)"; exit 2 ;;
esac
