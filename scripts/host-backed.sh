#!/bin/bash
# Runs a command on this VM as on a machine whose free memory stays backed: the balloon's free
# page reporting off, and the guest's free memory touched once so that the host backs it again;
# the reporting order is put back afterwards, whatever the command did. Root, and a VM kernel
# that takes a reporting order past its largest block (upstream refuses one: then nothing runs).
#
#   scripts/host-backed.sh [--gib N] -- COMMAND...
#
# N GiB are touched (default: the free memory less 2 GiB; 0: none, reporting off alone). docs/benchmarks.md, "With the
# host's memory kept backed", has what it is for and what it showed.
set -euo pipefail
param=/sys/module/page_reporting/parameters/page_reporting_order
gib=""
if [ "${1:-}" = --gib ]; then gib=$2; shift 2; fi
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "usage: $0 [--gib N] -- COMMAND..." >&2; exit 2; }
[ -w "$param" ] || { echo "$0: no writable $param (not root, or no free page reporting here)" >&2; exit 1; }
orders=$(awk '{ n = NF - 4; if (n > m) m = n } END { print m }' /proc/buddyinfo)
old=$(cat "$param")
if ! echo "$orders" > "$param" 2>/dev/null; then
    echo "$0: this kernel refuses reporting order $orders (past its largest block): reporting stays on" >&2
    exit 1
fi
trap 'echo "$old" > "$param"' EXIT
if [ -z "$gib" ]; then gib=$(awk '/^MemFree:/ { print int($2 / 1048576) - 2 }' /proc/meminfo); fi
echo "host-backed: reporting order $old -> $orders (none reported); touching $gib GiB" >&2
[ "$gib" -gt 0 ] && python3 - "$gib" <<'EOF'
import mmap, sys, time
n = int(sys.argv[1]) << 30
t = time.monotonic()
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
if hasattr(mmap, "MADV_HUGEPAGE"):
    m.madvise(mmap.MADV_HUGEPAGE)
for o in range(0, n, 4096):
    m[o] = 1
m.close()
print(f"host-backed: {n >> 30} GiB touched in {time.monotonic() - t:.1f} s", file=sys.stderr)
EOF
"$@"
