#!/bin/bash
# Capture the frames kernel IPVS emits for DR and TUN (ipip/gue/gre), for xvs golden tests
# (test/kernel/frames/dr-tun.ts). Runs inside the ipvs-vm guest (its tools: IPVSVM_TOOLS, bench/README.md):
#   cp test/kernel/frames/record-dr-tun.sh "$IPVSVM_CACHE/share/"
#   IPVSVM_CACHE=... "$IPVSVM_TOOLS/boot.sh" --run 'bash /mnt/share/record-dr-tun.sh'
#   bun test/kernel/frames/extract-dr-tun.ts "$IPVSVM_CACHE/share/out/golden" > test/kernel/frames/dr-tun.ts
# Namespaces cl -- lb (IPVS) -- rs on one segment, fixed MACs; the client sends UDP datagrams with
# chosen TOS/ECN and DF (python3 in the guest), tcpdump writes what lb received and sent.
set -u
OUT=/mnt/share/out/golden; rm -rf $OUT; mkdir -p $OUT
for m in ipip fou ip_gre ip_tunnel tunnel4 gre ip_vs ip_vs_rr ip6_tunnel tunnel6 ip6_udp_tunnel udp_tunnel; do modprobe $m 2>/dev/null; done
lsmod | grep -E 'ipip|fou|gre|ip_vs' | awk '{print $1}' | tr '\n' ' '; echo
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
ip netns exec lb sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n lb neigh replace 198.18.2.11 lladdr 02:00:00:00:02:0b dev s0 nud permanent
ip -n lb neigh replace 2001:db8:2::11 lladdr 02:00:00:00:02:0b dev s0 nud permanent
ip -n cl neigh replace 198.18.1.1 lladdr 02:00:00:00:01:01 dev eth0 nud permanent
ip -n cl neigh replace 2001:db8:1::1 lladdr 02:00:00:00:01:01 dev eth0 nud permanent
ip -n lb neigh replace 198.18.1.2 lladdr 02:00:00:00:01:02 dev c0 nud permanent
ip -n lb neigh replace 2001:db8:1::2 lladdr 02:00:00:00:01:02 dev c0 nud permanent
sleep 1
cat > /tmp/send.py <<'PY'
import socket, sys
fam, host, port, tos, df, size, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4], 0), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
if fam == "6":
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    s.setsockopt(socket.IPPROTO_IPV6, 23, 2 if df else 0)  # IPV6_MTU_DISCOVER
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    s.setsockopt(socket.IPPROTO_IP, 10, 2 if df else 0)  # IP_MTU_DISCOVER: DO / DONT
s.bind(("", sport))
payload = (b"xvs-golden-" * 200)[:size]
try:
    s.sendto(payload, (host, port))
except OSError as e:
    print("send error", e)
PY
cap() { # name ns iface
  ip netns exec $2 tcpdump -U -n -i $3 -w $OUT/$1.pcap >/dev/null 2>&1 & echo $!
}
PORTBASE=41000
run_case() { # name, ipvsadm args for the real server; sends 3 datagrams (DF CE, noDF ECT1, TOS 0)
  local name=$1; shift; PORTBASE=$((PORTBASE+10))
  ip netns exec lb ipvsadm -C
  ip netns exec lb ipvsadm -A -u 198.18.0.100:9000 -s rr
  ip netns exec lb ipvsadm -a -u 198.18.0.100:9000 "$@"
  local p1=$(cap $name-in lb c0) p2=$(cap $name-out lb s0)
  sleep 1
  ip netns exec cl python3 /tmp/send.py 4 198.18.0.100 9000 0x4b 1 64 $((PORTBASE+1))
  ip netns exec cl python3 /tmp/send.py 4 198.18.0.100 9000 0x49 0 64 $((PORTBASE+2))
  ip netns exec cl python3 /tmp/send.py 4 198.18.0.100 9000 0x00 1 300 $((PORTBASE+3))
  sleep 1; kill $p1 $p2; wait $p1 $p2 2>/dev/null
  echo "case $name: $(ip netns exec lb ipvsadm -Ln | tail -1)"
}
run_case dr -r 198.18.2.11:9000 -g
run_case ipip -r 198.18.2.11:9000 -i
run_case gue-nocsum -r 198.18.2.11:9000 -i --tun-type gue --tun-port 6080 --tun-nocsum
run_case gue-csum -r 198.18.2.11:9000 -i --tun-type gue --tun-port 6080 --tun-csum
run_case gue-remcsum -r 198.18.2.11:9000 -i --tun-type gue --tun-port 6081 --tun-remcsum
run_case gre-nocsum -r 198.18.2.11:9000 -i --tun-type gre --tun-nocsum
run_case gre-csum -r 198.18.2.11:9000 -i --tun-type gre --tun-csum
run_case ipip-v6rs -r [2001:db8:2::11]:9000 -i
run_case gue-v6rs -r [2001:db8:2::11]:9000 -i --tun-type gue --tun-port 6080 --tun-csum
# v6 service over a v4 and a v6 real server
run_case6() {
  local name=$1; shift; PORTBASE=$((PORTBASE+10))
  ip netns exec lb ipvsadm -C
  ip netns exec lb ipvsadm -A -u [2001:db8:100::100]:9000 -s rr
  ip netns exec lb ipvsadm -a -u [2001:db8:100::100]:9000 "$@"
  local p1=$(cap $name-in lb c0) p2=$(cap $name-out lb s0)
  sleep 1
  ip netns exec cl python3 /tmp/send.py 6 2001:db8:100::100 9000 0x4b 1 64 $((PORTBASE+1))
  ip netns exec cl python3 /tmp/send.py 6 2001:db8:100::100 9000 0x49 0 64 $((PORTBASE+2))
  sleep 1; kill $p1 $p2; wait $p1 $p2 2>/dev/null
  echo "case $name: $(ip netns exec lb ipvsadm -Ln | tail -1)"
}
run_case6 v6-ipip-v6rs -r [2001:db8:2::11]:9000 -i
run_case6 v6-gre-v6rs -r [2001:db8:2::11]:9000 -i --tun-type gre --tun-csum
run_case6 v6-ipip-v4rs -r 198.18.2.11:9000 -i
run_case6 v6-dr -r [2001:db8:2::11]:9000 -g
# path MTU: route MTU 1000 towards the RS, a DF datagram of 1200 bytes: ICMP frag needed to the client
ip -n lb route add 198.18.2.11/32 dev s0 mtu lock 1000
ip netns exec lb ipvsadm -C
ip netns exec lb ipvsadm -A -u 198.18.0.100:9000 -s rr
ip netns exec lb ipvsadm -a -u 198.18.0.100:9000 -r 198.18.2.11:9000 -i --tun-type gue --tun-port 6080
p1=$(cap pmtu-gue-in lb c0); sleep 1
ip netns exec cl python3 /tmp/send.py 4 198.18.0.100 9000 0x00 1 1200 40021
ip netns exec cl python3 /tmp/send.py 4 198.18.0.100 9000 0x00 0 1200 40022
p2=$(cap pmtu-gue-out lb s0); sleep 1
ip netns exec cl python3 /tmp/send.py 4 198.18.0.100 9000 0x00 0 1200 40023
sleep 1; kill $p1 $p2; wait $p1 $p2 2>/dev/null
ip -n lb route show
ip netns exec lb ipvsadm -Lnc | head -50
ls -la $OUT
echo golden done
