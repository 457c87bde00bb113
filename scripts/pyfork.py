"""Fork latency of a Python process with a big heap: run it plainly and under `hugeheap run`
and compare the medians (measured in one session, on one machine).

    python3 scripts/pyfork.py [GiB] [forks]
    hugeheap run -- python3 scripts/pyfork.py [GiB] [forks]

Builds about GiB gibibytes of small Python objects (a dict of str and a list of bytes), then
times os.fork() as the parent sees it (the child exits at once) and prints one line:
heap MiB, RSS MiB, huge-page KiB (AnonHugePages + HugetlbPages), anonymous KiB in 4 KiB pages
(RssAnon - AnonHugePages: the page-table entries a fork copies one by one), VmPTE KiB (which
counts the page table the kernel keeps aside for each THP too), fork median/p90 ms.
"""
import os
import sys
import time

gib = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
forks = int(sys.argv[2]) if len(sys.argv) > 2 else 50


def kib(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


target = int(gib * (1 << 30))
d = {}
blobs = []
i = 0
while kib("/proc/self/status", "VmRSS:") * 1024 + kib("/proc/self/status", "HugetlbPages:") * 1024 < target:
    for _ in range(100_000):
        d[i] = "value-%d" % i
        blobs.append(b"x" * (32 + i % 200))
        i += 1

lat = []
for _ in range(forks):
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    lat.append(time.perf_counter() - t)
    os.waitpid(pid, 0)
lat.sort()
rss = kib("/proc/self/status", "VmRSS:")
hugetlb = kib("/proc/self/status", "HugetlbPages:")
thp = kib("/proc/self/smaps_rollup", "AnonHugePages:")
huge = thp + hugetlb
small = kib("/proc/self/status", "RssAnon:") - thp
pte = kib("/proc/self/status", "VmPTE:")
print(
    f"objects={i} rss_mib={rss >> 10} hugetlb_mib={hugetlb >> 10} huge_kib={huge} small_kib={small} vmpte_kib={pte} "
    f"fork_median_ms={lat[len(lat) // 2] * 1e3:.3f} fork_p90_ms={lat[int(len(lat) * 0.9)] * 1e3:.3f}"
)
