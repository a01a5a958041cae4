#!/usr/bin/env python3
"""Interleaved A/B timing: runs each command once per round, round after round, so that all
commands see the same stretches of this VM's drifting speed. Standard output goes to a file
(as `palisade matrix -o json > file` would), wall time from fork to wait4.

Usage: ab.py ROUNDS LABEL=COMMAND...     e.g.
  bench/ab.py 30 "old=/tmp/palisade-old matrix -f DIR -o json" "new=target/release/palisade matrix -f DIR -o json"
"""
import os
import statistics
import sys
import tempfile
import time

rounds, commands = int(sys.argv[1]), [arg.split("=", 1) for arg in sys.argv[2:]]
times = {label: [] for label, _ in commands}
with tempfile.TemporaryDirectory() as tmp:
    output = os.path.join(tmp, "stdout")
    for _ in range(rounds):
        for label, command in commands:
            with open(output, "w") as out:
                start = time.perf_counter()
                pid = os.fork()
                if pid == 0:
                    os.dup2(out.fileno(), 1)
                    args = command.split()
                    os.execv(args[0], args)
                os.wait4(pid, 0)
                times[label].append(time.perf_counter() - start)
for label, ts in times.items():
    print(f"{label:<24} best {min(ts) * 1e3:8.2f} ms   median {statistics.median(ts) * 1e3:8.2f} ms")
