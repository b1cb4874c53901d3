#!/bin/bash
# Replay what a real xvs master sent (xvs-master-v1.pcap, xvs-master-v0.pcap: captured on the sync link
# by test/integration/sync-interop.test.ts with XVS_SYNC_RECORD=1) to a kernel IPVS backup in the
# ipvs-vm guest, and record what the kernel installed: the ground truth for test/unit/sync/interop.test.ts.
#   XVS_SYNC_RECORD=1 bun test test/integration/sync-interop.test.ts     # (re)captures the pcaps, as root
#   cp test/kernel/sync/replay-xvs.sh test/kernel/sync/xvs-master-v[01].pcap "$IPVSVM_CACHE"/share/
#   "$IPVSVM_TOOLS"/boot.sh --run 'bash /mnt/share/replay-xvs.sh'
#   cp "$IPVSVM_CACHE"/share/out/ipvs-sync-xvs/* test/kernel/sync/
# Namespaces: tx (sends, 198.18.9.3 on tx0) --veth-- bk (kernel IPVS backup on sy0, syncid 7, the
# services of record.sh). Each captured datagram's UDP payload is sent unchanged, in capture order,
# 20 ms apart, to 224.0.0.81:8848. Per phase (v1, then v0 to the same backup, as record.sh did):
# xvs-master-<phase>-replay.txt (capture time ms, send time ms, bytes: one line per datagram),
# xvs-master-<phase>-bk.txt (the backup's ipvsadm -Lnc a second after the last one) and .time (the
# guest clock then); at the end xvs-master-dmesg.txt (the kernel's IPVS log lines).
set -u
OUT=/mnt/share/out/ipvs-sync-xvs; rm -rf $OUT; mkdir -p $OUT
for m in ip_vs ip_vs_rr ip_vs_pe_sip nf_conntrack_sip; do modprobe $m 2>/dev/null; done
exec > >(tee $OUT/xvs-master-output.txt) 2>&1
echo "### $(uname -r); $(ipvsadm --version 2>&1)"
dmesg -C
for n in tx bk; do ip netns add $n; ip -n $n link set lo up; done
ip link add tx0 netns tx type veth peer name sy0 netns bk
ip -n tx link set tx0 up; ip -n bk link set sy0 up
ip -n tx addr add 198.18.9.3/24 dev tx0; ip -n bk addr add 198.18.9.2/24 dev sy0
x="ip netns exec bk ipvsadm"
$x -A -t 198.18.0.100:80 -s rr; $x -a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m
$x -A -u 198.18.0.100:9000 -s rr; $x -a -u 198.18.0.100:9000 -r 198.18.2.11:9001 -m
$x -A -t 198.18.0.100:81 -s rr -p 300; $x -a -t 198.18.0.100:81 -r 198.18.2.11:8080 -m
$x -A -t 198.18.0.101:80 -s rr; $x -a -t 198.18.0.101:80 -r 198.18.2.11:80 -g
$x -A -t 198.18.0.100:21 -s rr; $x -a -t 198.18.0.100:21 -r 198.18.2.11:21 -m
$x -A -u 198.18.0.100:5060 -s rr -p 60 --pe sip; $x -a -u 198.18.0.100:5060 -r 198.18.2.11:5060 -m
$x -A -t [2001:db8:100::100]:80 -s rr; $x -a -t [2001:db8:100::100]:80 -r [2001:db8:2::11]:8080 -m
$x -A -u [2001:db8:100::100]:9000 -s rr; $x -a -u [2001:db8:100::100]:9000 -r [2001:db8:2::11]:9001 -m
$x -A -t [2001:db8:100::100]:81 -s rr -p 300; $x -a -t [2001:db8:100::100]:81 -r [2001:db8:2::11]:8080 -m
$x -A -t [2001:db8:100::101]:80 -s rr; $x -a -t [2001:db8:100::101]:80 -r [2001:db8:2::11]:80 -g
$x -Ln
$x --start-daemon backup --mcast-interface sy0 --syncid 7
sleep 1
for phase in v1 v0; do
	echo "### $phase: replay"
	ip netns exec tx python3 - /mnt/share/xvs-master-$phase.pcap > $OUT/xvs-master-$phase-replay.txt <<'PY'
# classic little-endian pcap, Ethernet; every IPv4 UDP datagram to port 8848, payload as captured
import socket, struct, sys, time
d = open(sys.argv[1], "rb").read()
assert struct.unpack_from("<I", d, 0)[0] == 0xa1b2c3d4 and struct.unpack_from("<I", d, 20)[0] == 1
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("198.18.9.3"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
o = 24
while o + 16 <= len(d):
    sec, usec, caplen = struct.unpack_from("<III", d, o)
    f = d[o + 16:o + 16 + caplen]; o += 16 + caplen
    if struct.unpack_from(">H", f, 12)[0] != 0x0800: continue
    ip = f[14:]; ihl = (ip[0] & 15) * 4
    if ip[9] != 17: continue
    udp = ip[ihl:]
    if struct.unpack_from(">H", udp, 2)[0] != 8848: continue
    payload = udp[8:struct.unpack_from(">H", udp, 4)[0]]
    s.sendto(payload, ("224.0.0.81", 8848))
    print("%d %.3f %d" % (sec * 1000 + usec // 1000, time.time() * 1000, len(payload)), flush=True)
    time.sleep(0.02)
PY
	cat $OUT/xvs-master-$phase-replay.txt
	sleep 1
	date +%s.%N > $OUT/xvs-master-$phase-bk.time
	echo "### $phase: bk ipvsadm -Lnc"; ip netns exec bk ipvsadm -Lnc | tee $OUT/xvs-master-$phase-bk.txt
done
echo "### dmesg"; dmesg | grep -i ipvs | tee $OUT/xvs-master-dmesg.txt
ls -la $OUT
echo "replay done"
