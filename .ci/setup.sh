#!/usr/bin/env bash
# Install what xvs needs on a fresh Debian 12 machine, as root. Idempotent and quick when all is there.
#   bash .ci/setup.sh            install only
#   bash .ci/setup.sh demo [...] install, build dist/xvs, run the demo lab (extra args go to `xvs demo`)
#   bash .ci/setup.sh test [...] install, build, type-check (tsc), format and lint check (biome), run the whole test suite,
#                                then the namespace labs again with --flow-cache off (extra args go to both `bun test` runs)
# What it installs: the Debian package of every command and header listed in .ci/commands.txt that is
# missing, then Bun and the other npm dependencies (package.json); it mounts bpffs if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
	say "xvs needs root (XDP, AF_XDP, network namespaces): run this as root (su -, or sudo where it is installed)"
	exit 1
fi

# Debian packages: one for every command or header in .ci/commands.txt that is not there yet.
need=()
while read -r what pkg; do
	case "$what" in "" | "#"*) continue ;; esac
	if [ "${what#/}" != "$what" ]; then [ -e "$what" ] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
	case " ${need[*]} " in *" $pkg "*) ;; *) need+=("$pkg") ;; esac
done <.ci/commands.txt
if [ ${#need[@]} -gt 0 ]; then
	say "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || say "apt-get update failed; trying the cached package lists"
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	while read -r what pkg; do   # a wrong package name in the list must not pass unnoticed
		case "$what" in "" | "#"*) continue ;; esac
		[ -e "$what" ] || command -v "$what" >/dev/null 2>&1 || { say "$pkg did not provide $what (.ci/commands.txt)"; exit 1; }
	done <.ci/commands.txt
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
	# the types: build.ts has generated src/ffi/abi.ts, which the check needs
	say "tsc --noEmit -p ."
	tsc --noEmit -p .
	say "biome ci . (format and lint, biome.jsonc)"
	biome ci --colors=off .
	# first run: the whole suite, each lab's xvs daemon with the default flow cache (on)
	rc=0
	bun test "$@" || rc=$?
	# second run (issue 17): the namespace labs again, every daemon with --flow-cache off
	# (src/tools/lab/daemon.ts) unless the lab sets its own, so that the TypeScript path is
	# tested on every packet as well. With arguments, the same selection again; without, every
	# file of test/integration but those whose run the variable cannot change: no xvs daemon
	# (backup-only, lab-teardown, steer*: BPF_PROG_TEST_RUN) or daemons that each set
	# --flow-cache themselves (bench, workers-bench: every contender; flow-cache*: on, or both).
	# .ci/run finds the second run's output after this line (CACHE_OFF_MARK there)
	say "cache-off run: XVS_LAB_FLOW_CACHE=off bun test"
	off=("$@")
	if [ $# -eq 0 ]; then
		off=("test/integration")
		for f in backup-only lab-teardown 'steer*' bench workers-bench 'flow-cache*'; do
			off+=("--path-ignore-patterns=test/integration/$f.test.ts")
		done
	fi
	rc2=0
	XVS_LAB_FLOW_CACHE=off bun test "${off[@]}" || rc2=$?
	[ "$rc" -ne 0 ] && exit "$rc"
	exit "$rc2"
	;;
*) say "unknown action '$action' (expected: demo, test)"; exit 2 ;;
esac
