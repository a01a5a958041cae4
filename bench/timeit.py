#!/usr/bin/env python3
"""Runs a command N times (output discarded) and prints the fastest and median wall time and
the peak RSS. Exit status 1 is accepted (`palisade check` uses it for "denied").

Usage: timeit.py N LABEL CMD...
"""
import statistics
import subprocess
import sys
import tempfile
import time

runs, label, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
times, rss = [], 0
for _ in range(runs):
    with tempfile.NamedTemporaryFile("r") as f:
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            sys.exit(f"{label}: exit status {result.returncode}")
        rss = max(rss, int(f.read().split()[-1]))
print(f"{label:<40} best {min(times) * 1000:9.1f} ms   median {statistics.median(times) * 1000:9.1f} ms   peak RSS {rss / 1024:7.1f} MiB")
