#!/bin/bash
# Capture the frames kernel IPVS emits for NAT (masquerading), both directions, TCP (with and without
# TCP options) and UDP, IPv4 and IPv6, for xvs golden tests (test/kernel/frames/nat.ts).
# Runs inside the ipvs-vm guest (its tools: IPVSVM_TOOLS, bench/README.md), like record-dr-tun.sh:
#   cp test/kernel/frames/record-nat.sh "$IPVSVM_CACHE/share/"
#   IPVSVM_CACHE=... "$IPVSVM_TOOLS/boot.sh" --run 'bash /mnt/share/record-nat.sh'
#   bun test/kernel/frames/extract-nat.ts "$IPVSVM_CACHE/share/out/nat" > test/kernel/frames/nat.ts
# Namespaces cl -- lb (IPVS) -- rs, the same addresses and MACs as record-dr-tun.sh; the real server
# routes through lb. Services: TCP VIP:80 -> RS:8080 and UDP VIP:9000 -> RS:9001 (-m), so that
# ports are rewritten too. tcpdump on lb's c0 and s0 writes every frame of each case.
set -u
OUT=/mnt/share/out/nat; rm -rf $OUT; mkdir -p $OUT
for m in ip_vs ip_vs_rr; do modprobe $m 2>/dev/null; done
ip netns add cl; ip netns add lb; ip netns add rs
for n in cl lb rs; do ip -n $n link set lo up; done
ip link add eth0 netns cl type veth peer name c0 netns lb
ip link add s0 netns lb type veth peer name eth0 netns rs
# offloads off here only: these are reference recordings of kernel IPVS, and tcpdump must capture
# the checksums the frames carry on the wire (with offloads, a local sender's frame is captured with
# only its pseudo-header sum); the project's own labs keep veth's default offloads
for x in "cl eth0" "lb c0" "lb s0" "rs eth0"; do set -- $x; ip netns exec $1 ethtool -K $2 rx off tx off >/dev/null 2>&1; ip -n $1 link set $2 up; done
ip -n cl link set eth0 address 02:00:00:00:01:02; ip -n lb link set c0 address 02:00:00:00:01:01
ip -n lb link set s0 address 02:00:00:00:02:01; ip -n rs link set eth0 address 02:00:00:00:02:0b
ip -n cl addr add 198.18.1.2/24 dev eth0; ip -n cl route add default via 198.18.1.1
ip -n lb addr add 198.18.1.1/24 dev c0; ip -n lb addr add 198.18.2.1/24 dev s0; ip -n lb addr add 198.18.0.100/32 dev lo
ip -n cl addr add 2001:db8:1::2/64 dev eth0 nodad; ip -n cl -6 route add default via 2001:db8:1::1
ip -n lb addr add 2001:db8:1::1/64 dev c0 nodad; ip -n lb addr add 2001:db8:2::1/64 dev s0 nodad; ip -n lb addr add 2001:db8:100::100/128 dev lo nodad
ip -n rs addr add 198.18.2.11/24 dev eth0; ip -n rs addr add 2001:db8:2::11/64 dev eth0 nodad
ip -n rs route add default via 198.18.2.1; ip -n rs -6 route add default via 2001:db8:2::1
ip netns exec lb sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
for x in "lb 198.18.2.11 02:00:00:00:02:0b s0" "lb 2001:db8:2::11 02:00:00:00:02:0b s0" \
	"lb 198.18.1.2 02:00:00:00:01:02 c0" "lb 2001:db8:1::2 02:00:00:00:01:02 c0" \
	"cl 198.18.1.1 02:00:00:00:01:01 eth0" "cl 2001:db8:1::1 02:00:00:00:01:01 eth0" \
	"rs 198.18.2.1 02:00:00:00:02:01 eth0" "rs 2001:db8:2::1 02:00:00:00:02:01 eth0"; do
	set -- $x; ip -n $1 neigh replace $2 lladdr $3 dev $4 nud permanent
done
ip netns exec lb ipvsadm -A -t 198.18.0.100:80 -s rr; ip netns exec lb ipvsadm -a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m
ip netns exec lb ipvsadm -A -u 198.18.0.100:9000 -s rr; ip netns exec lb ipvsadm -a -u 198.18.0.100:9000 -r 198.18.2.11:9001 -m
ip netns exec lb ipvsadm -A -t [2001:db8:100::100]:80 -s rr; ip netns exec lb ipvsadm -a -t [2001:db8:100::100]:80 -r [2001:db8:2::11]:8080 -m
ip netns exec lb ipvsadm -A -u [2001:db8:100::100]:9000 -s rr; ip netns exec lb ipvsadm -a -u [2001:db8:100::100]:9000 -r [2001:db8:2::11]:9001 -m
cat > /tmp/rs.py <<'PY'
# Real server: TCP on 8080 answers one line per connection and closes; UDP on 9001 echoes. v4 and v6.
import socket, threading
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 8080)); s.listen(16)
    while True:
        c, _ = s.accept(); c.recv(100); c.sendall(b"xvs-nat-golden reply\n"); c.close()
def udp(fam, addr):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 9001))
    while True:
        d, a = s.recvfrom(2000); s.sendto(b"echo:" + d, a)
for f in (tcp, udp):
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        threading.Thread(target=f, args=(fam, addr), daemon=True).start()
threading.Event().wait()
PY
cat > /tmp/cl.py <<'PY'
# Client: one TCP connection (send a line, read the reply until the server closes) or two UDP datagrams.
import socket, sys
proto, fam, host, port, sport = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
af = socket.AF_INET6 if fam == "6" else socket.AF_INET
if proto == "tcp":
    s = socket.socket(af, socket.SOCK_STREAM); s.bind(("", sport)); s.settimeout(5); s.connect((host, port))
    s.sendall(b"xvs-nat-golden request\n"); r = b""
    while True:
        d = s.recv(100)
        if not d: break
        r += d
    s.close(); print("tcp reply", r)
else:
    s = socket.socket(af, socket.SOCK_DGRAM); s.bind(("", sport)); s.settimeout(5)
    for i in range(2):
        s.sendto(b"xvs-nat-golden datagram %d" % i, (host, port)); print("udp reply", s.recvfrom(2000)[0])
PY
ip netns exec rs python3 /tmp/rs.py & RSPID=$!
sleep 2
cap() { # name ns iface
	ip netns exec $2 tcpdump -U -n -i $3 -w $OUT/$1.pcap >/dev/null 2>&1 & echo $!
}
run_case() { # name proto family vip port sport
	local p1=$(cap $1-c0 lb c0) p2=$(cap $1-s0 lb s0)
	sleep 1
	ip netns exec cl python3 /tmp/cl.py $2 $3 $4 $5 $6
	sleep 1; kill $p1 $p2; wait $p1 $p2 2>/dev/null
	echo "case $1 done"
}
opts() { # on|off: TCP timestamps, SACK and window scaling in the client's and the server's stacks
	local v=$([ $1 = on ] && echo 1 || echo 0)
	for n in cl rs; do ip netns exec $n sysctl -qw net.ipv4.tcp_timestamps=$v net.ipv4.tcp_sack=$v net.ipv4.tcp_window_scaling=$v; done
}
opts on
run_case tcp-opts tcp 4 198.18.0.100 80 42001
run_case tcp6-opts tcp 6 2001:db8:100::100 80 42002
opts off
run_case tcp-noopts tcp 4 198.18.0.100 80 42003
run_case tcp6-noopts tcp 6 2001:db8:100::100 80 42004
run_case udp udp 4 198.18.0.100 9000 42005
run_case udp6 udp 6 2001:db8:100::100 9000 42006
ip netns exec lb ipvsadm -Lnc
kill $RSPID
uname -r; ipvsadm --version
ls -la $OUT
echo nat done
