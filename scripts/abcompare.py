#!/usr/bin/env python3
"""Before/after in one run: two builds of the allocation benchmark (bench targets or
`hugeheap` binaries), run interleaved, round after round, so that drift on a shared machine
hits both alike. Prints each workload's median time per build and the ratio after/before.

  scripts/abcompare.py BEFORE AFTER [--rounds 5] [--only hugeheap] [--args "..."]

BEFORE and AFTER are commands that run `bench alloc` (e.g. `target/release/hugeheap bench
alloc`, or a bench target binary, which takes the same options); each round runs each once
with `--reps 1 --only ONLY --out DIR` and reads DIR/alloc.json.
"""
import argparse, json, shlex, statistics, subprocess, sys, tempfile, os

ap = argparse.ArgumentParser()
ap.add_argument("before")
ap.add_argument("after")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--only", default="hugeheap")
ap.add_argument("--args", default="")
a = ap.parse_args()

times = {"before": {}, "after": {}}
for r in range(a.rounds):
    for name, cmd in (("before", a.before), ("after", a.after)) if r % 2 == 0 else (("after", a.after), ("before", a.before)):
        with tempfile.TemporaryDirectory() as d:
            argv = shlex.split(cmd) + ["--reps", "1", "--only", a.only, "--out", d] + shlex.split(a.args)
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for cell in json.load(open(os.path.join(d, "alloc.json"))):
                for s in cell["samples"]:
                    times[name].setdefault(cell["workload"], []).append(s["secs"])
    print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

print(f"{'workload':<14}{'before ms':>11}{'after ms':>11}{'after/before':>14}")
worst = 0
for w in times["before"]:
    b, f = statistics.median(times["before"][w]) * 1e3, statistics.median(times["after"][w]) * 1e3
    worst = max(worst, f / b)
    print(f"{w:<14}{b:>11.1f}{f:>11.1f}{f / b:>14.3f}")
print(f"worst ratio {worst:.3f}")
