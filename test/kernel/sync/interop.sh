#!/bin/bash
# Interop of the xvs sync daemon with kernel IPVS, both ways, inside the ipvs-vm guest (tools in
# $IPVSVM_TOOLS, see test/kernel/README.md), as root:
#   cp dist/xvs "$IPVSVM_CACHE"/share/bin/xvs-sync; cp test/kernel/sync/interop.sh "$IPVSVM_CACHE"/share/
#   "$IPVSVM_TOOLS"/boot.sh --timeout 900 --run 'bash /mnt/share/interop.sh'
#   cp "$IPVSVM_CACHE"/share/out/sync-interop/* test/kernel/sync/interop/
# A (kernel master -> xvs backup): cl -- lb (kernel IPVS NAT, sync master on sy0) -- rs;
#   lb sy0 --veth-- bk sy0 (xvs run --iface sy0, the same service, sync backup). Held TCP
#   connections through lb; bk's `xvs adm -Lnc` must list them ESTABLISHED to the same real server.
# B (xvs master -> kernel backup): xc -- xl (xvs NAT on c0/s0, sync master on sy1) -- xr;
#   xl sy1 --veth-- kb sy1 (kernel IPVS, the same service, sync backup). Held TCP connections through
#   xl; kb's `ipvsadm -Lnc` must list them ESTABLISHED.
set -u
OUT=/mnt/share/out/sync-interop; rm -rf $OUT; mkdir -p $OUT
XVS=/mnt/share/bin/xvs-sync
for m in ip_vs ip_vs_rr; do modprobe $m 2>/dev/null; done
exec > >(tee $OUT/interop-output.txt) 2>&1
echo "### $(uname -r); $(ipvsadm --version 2>&1)"
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
for n in cl lb rs bk xc xl xr kb; do ip netns add $n; ip -n $n link set lo up; done
link() { ip link add $2 netns $1 type veth peer name $4 netns $3; ip -n $1 link set $2 up; ip -n $3 link set $4 up; }
link cl eth0 lb c0; link lb s0 rs eth0; link lb sy0 bk sy0
link xc eth0 xl c0; link xl s0 xr eth0; link xl sy1 kb sy1
for p in "cl lb rs" "xc xl xr"; do set -- $p
	ip -n $1 addr add 198.18.1.2/24 dev eth0; ip -n $1 route add default via 198.18.1.1
	ip -n $2 addr add 198.18.1.1/24 dev c0; ip -n $2 addr add 198.18.2.1/24 dev s0; ip -n $2 addr add 198.18.0.100/32 dev lo
	ip netns exec $2 sysctl -qw net.ipv4.ip_forward=1
	ip -n $3 addr add 198.18.2.11/24 dev eth0; ip -n $3 route add default via 198.18.2.1
done
ip -n lb addr add 198.18.9.1/24 dev sy0; ip -n bk addr add 198.18.9.2/24 dev sy0
ip -n xl addr add 198.18.9.1/24 dev sy1; ip -n kb addr add 198.18.9.2/24 dev sy1
# XDP on veth: the peers of xvs's interfaces get a trivial program (lab.md), done by xvs run itself for its own
cat > /tmp/rs.py <<'PY'
import socket, threading
def conn(c):
    try:
        while True:
            d = c.recv(200)
            if not d: break
            c.sendall(b"ok " + d)
    except OSError: pass
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8080)); s.listen(64)
while True:
    c, _ = s.accept(); threading.Thread(target=conn, args=(c,), daemon=True).start()
PY
cat > /tmp/cl.py <<'PY'
# N held connections, each sends 3 lines (in_pkts reaches sync_threshold 3) and waits for /tmp/release
import socket, sys, time, os
n, base = int(sys.argv[1]), int(sys.argv[2])
socks = []
for k in range(n):
    s = socket.socket(); s.bind(("", base + k)); s.settimeout(20); s.connect(("198.18.0.100", 80))
    for i in range(3):
        s.sendall(b"line %d\n" % i); s.recv(200)
    socks.append(s)
print("held", n, flush=True)
while not os.path.exists("/tmp/release"): time.sleep(0.2)
for k, s in enumerate(socks):
    s.sendall(b"after\n"); print("answer", base + k, s.recv(200), flush=True)
PY
ip netns exec rs python3 /tmp/rs.py & ip netns exec xr python3 /tmp/rs.py &
sleep 1

echo "### A: kernel IPVS master (lb) -> xvs backup (bk)"
ip netns exec lb ipvsadm -A -t 198.18.0.100:80 -s rr; ip netns exec lb ipvsadm -a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m
mkdir -p /tmp/xvs-bk; XVS_STATE_DIR=/tmp/xvs-bk ip netns exec bk $XVS run --iface sy0 > $OUT/A-xvs-bk.log 2>&1 &
for _ in $(seq 240); do XVS_STATE_DIR=/tmp/xvs-bk ip netns exec bk $XVS adm -Ln >/dev/null 2>&1 && break; sleep 0.5; done
bkadm() { XVS_STATE_DIR=/tmp/xvs-bk ip netns exec bk $XVS adm "$@"; }
bkadm -A -t 198.18.0.100:80 -s rr; bkadm -a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m
bkadm --start-daemon backup --mcast-interface sy0 --syncid 7
ip netns exec lb ipvsadm --start-daemon master --mcast-interface sy0 --syncid 7
bkadm -L --daemon; ip netns exec lb ipvsadm -L --daemon
ip netns exec cl timeout 120 python3 /tmp/cl.py 5 41000 > /tmp/A-cl.log 2>&1 &
for _ in $(seq 120); do grep -q held /tmp/A-cl.log && break; sleep 0.5; done
echo "### A: lb ipvsadm -Lnc"; ip netns exec lb ipvsadm -Lnc | tee $OUT/A-lb.txt
sleep 4
echo "### A: bk xvs adm -Lnc (after the flush)"; bkadm -Lnc | tee $OUT/A-bk.txt
ip netns exec bk curl -s -H "Authorization: Bearer $(cat /tmp/xvs-bk/token)" http://$(cat /tmp/xvs-bk/api)/v1/daemons/backup/stats > $OUT/A-bk-stats.json
cat $OUT/A-bk-stats.json; echo
touch /tmp/release; sleep 2; cat /tmp/A-cl.log; rm -f /tmp/release

echo "### B: xvs master (xl) -> kernel IPVS backup (kb)"
ip netns exec kb ipvsadm -A -t 198.18.0.100:80 -s rr; ip netns exec kb ipvsadm -a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m
ip netns exec kb ipvsadm --start-daemon backup --mcast-interface sy1 --syncid 9
mkdir -p /tmp/xvs-xl; XVS_STATE_DIR=/tmp/xvs-xl ip netns exec xl $XVS run --iface c0 --iface s0 > $OUT/B-xvs-xl.log 2>&1 &
xladm() { XVS_STATE_DIR=/tmp/xvs-xl ip netns exec xl $XVS adm "$@"; }
for _ in $(seq 240); do xladm -Ln >/dev/null 2>&1 && break; sleep 0.5; done
xladm -A -t 198.18.0.100:80 -s rr; xladm -a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m
xladm --start-daemon master --mcast-interface sy1 --syncid 9
xladm -L --daemon; ip netns exec kb ipvsadm -L --daemon
ip netns exec xc timeout 180 python3 /tmp/cl.py 5 42000 > /tmp/B-cl.log 2>&1 &
for _ in $(seq 240); do grep -q held /tmp/B-cl.log && break; sleep 0.5; done
cat /tmp/B-cl.log
echo "### B: xl xvs adm -Lnc"; xladm -Lnc | tee $OUT/B-xl.txt
sleep 4
echo "### B: kb ipvsadm -Lnc (after the flush)"; ip netns exec kb ipvsadm -Lnc | tee $OUT/B-kb.txt
touch /tmp/release; sleep 2; cat /tmp/B-cl.log
echo "### done"
