#!/usr/bin/env python3
"""Run sequences.txt against real kernel IPVS inside the ipvs-vm guest and write transcripts.json.

Runs in the guest (python3 is there): every sequence gets a fresh network namespace (so a fresh
IPVS table with default timeouts) unless it names one with `@ns`; each `$` step runs
`ipvsadm ARGS` there and records stdout, stderr and the exit code byte for byte.

    python3 capture.py sequences.txt OUTDIR [NAME...]

With NAMEs, only those sequences run and are replaced in OUTDIR/transcripts.json.
"""
import json
import os
import subprocess
import sys


def parse(path):
    seqs, cur, heredoc = [], None, None
    for raw in open(path, encoding="utf-8").read().split("\n"):
        if heredoc is not None:
            if raw == "<<":
                cur["steps"][-1]["stdin"] = "".join(line + "\n" for line in heredoc)
                heredoc = None
            else:
                heredoc.append(raw)
            continue
        if raw.startswith("## "):
            cur = {"name": raw[3:].strip(), "ns": None, "steps": []}
            seqs.append(cur)
        elif raw.startswith("@ns "):
            cur["ns"] = raw[4:].strip()
        elif raw == "$" or raw.startswith("$ ") or raw.startswith("& "):
            kind = "stable" if raw[0] == "&" else "adm"
            args = raw[2:].split(" ") if len(raw) > 2 else []
            step = {"kind": kind, "argv": args}
            if args and args[-1] == "<<":
                step["argv"] = args[:-1]
                heredoc = []
            elif args and args[-1].startswith("<") and args[-1][1:].isdigit():
                step["argv"] = args[:-1]
                step["stdinFrom"] = int(args[-1][1:])
            cur["steps"].append(step)
        elif raw.startswith("! "):
            cur["steps"].append({"kind": "sh", "sh": raw[2:]})
    return seqs


def adm(ns, argv, stdin):
    p = subprocess.run(["ip", "netns", "exec", ns, "ipvsadm"] + argv, input=stdin.encode(),
                       capture_output=True, timeout=120)
    return {"stdout": p.stdout.decode("utf-8", "surrogateescape"),
            "stderr": p.stderr.decode("utf-8", "surrogateescape"), "exit": p.returncode}


def main():
    seqs = parse(sys.argv[1])
    outdir = sys.argv[2]
    # the guest's minimal Debian has no netbase: install the same /etc/services the tests use
    with open(os.path.join(outdir, "etc-services"), "rb") as src, open("/etc/services", "wb") as dst:
        dst.write(src.read())
    only = set(sys.argv[3:])
    result = []
    for i, seq in enumerate(seqs):
        if only and seq["name"] not in only:
            continue
        ns = seq["ns"] or f"golden{i}"
        if not seq["ns"]:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        steps = []
        for st in seq["steps"]:
            if st["kind"] == "sh":
                p = subprocess.run(["bash", "-c", ". /mnt/tools/lib.sh; " + st["sh"]], cwd="/mnt/tools",
                                   capture_output=True, timeout=600)
                steps.append({"kind": "sh", "sh": st["sh"], "exit": p.returncode,
                              "out": (p.stdout + p.stderr).decode("utf-8", "replace")[-2000:]})
                continue
            stdin = st.get("stdin", "")
            if "stdinFrom" in st:
                stdin = steps[st["stdinFrom"] - 1]["stdout"]
            if st["kind"] == "stable":
                # re-run the previous step and this one until the previous one reads the same
                # before and after (the estimator ticks every 2 s)
                prev = steps[-1]
                for _ in range(20):
                    r = adm(ns, st["argv"], stdin)
                    again = adm(ns, prev["argv"], prev.get("stdin", ""))
                    if again["stdout"] == prev["stdout"]:
                        break
                    prev.update(again)
                    prev["retried"] = True
            else:
                r = adm(ns, st["argv"], stdin)
            rec = {"kind": "adm", "argv": st["argv"], **r}
            if "stdin" in st or "stdinFrom" in st:
                rec["stdin"] = stdin
            steps.append(rec)
        if not seq["ns"]:
            subprocess.run(["ip", "netns", "del", ns])
        result.append({"name": seq["name"], "steps": steps})
        print(f"captured {seq['name']}: {len(steps)} steps", flush=True)
    info = {
        "kernel": os.uname().release,
        "ipvsadm": subprocess.run(["ipvsadm", "--version"], capture_output=True).stdout.decode().strip(),
        "etc_hosts": os.path.exists("/etc/hosts"),
    }
    out_path = os.path.join(outdir, "transcripts.json")
    if only and os.path.exists(out_path):
        # re-capturing some sequences: keep the others, in sequences.txt order
        old = {s["name"]: s for s in json.load(open(out_path, encoding="utf-8"))["sequences"]}
        new = {s["name"]: s for s in result}
        result = [new.get(s["name"]) or old[s["name"]] for s in seqs if s["name"] in new or s["name"] in old]
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"provenance": info, "sequences": result}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    # the guest may have no /etc/hosts at all: then no name resolves (an empty file here)
    hosts = open("/etc/hosts", "rb").read() if os.path.exists("/etc/hosts") else b""
    with open(os.path.join(outdir, "etc-hosts"), "wb") as dst:
        dst.write(hosts)


main()
