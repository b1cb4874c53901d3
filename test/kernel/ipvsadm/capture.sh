#!/bin/bash
# Re-capture transcripts.json from real kernel IPVS (ipvs-vm guest: Debian 6.1 kernel, ipvsadm 1.31).
#   IPVSVM_TOOLS=DIR IPVSVM_CACHE=/root/.cache/ipvs-vm-a test/kernel/ipvsadm/capture.sh [SEQUENCE...]
# Needs the ipvs-vm guest tools (IPVSVM_TOOLS: prepare.sh, boot.sh; bench/README.md), their
# prepare.sh run with the same IPVSVM_CACHE. Takes a few minutes (software emulation). Writes
# transcripts.json and etc-hosts (the guest's) beside this file; etc-services (Debian netbase,
# installed into the guest, which lacks it) is an input.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VM=${IPVSVM_TOOLS:?set IPVSVM_TOOLS to the ipvs-vm guest tools directory (prepare.sh, boot.sh; bench/README.md)}
CACHE=${IPVSVM_CACHE:?set IPVSVM_CACHE to your own ipvs-vm cache}
mkdir -p "$CACHE/share/golden"
cp "$HERE/capture.py" "$HERE/sequences.txt" "$HERE/etc-services" "$CACHE/share/golden/"
# with sequence names, only those are re-captured (merged into the current transcripts)
if [ $# -gt 0 ]; then cp "$HERE/transcripts.json" "$CACHE/share/golden/"; else rm -f "$CACHE/share/golden/transcripts.json"; fi
"$VM/boot.sh" --run "python3 /mnt/share/golden/capture.py /mnt/share/golden/sequences.txt /mnt/share/golden $*"
cp "$CACHE/share/golden/transcripts.json" "$CACHE/share/golden/etc-hosts" "$HERE/"
echo "transcripts: $HERE/transcripts.json"
