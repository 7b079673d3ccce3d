#!/usr/bin/env python3
"""ab.py RUNS WARMUP cmd1 cmd2 ...: runs each command once per round (order alternating), waiting
before each run until the machine was >= IDLE% idle over 0.3 s (at most WAIT s), and prints
median wall ms (spawn to exit), the minimum and the median CPU time (wait4's rusage: the process's
threads and the children it reaped) per command, and the load average's range. Env: IDLE
(default 90), WAIT (default 20). Used for the A/B comparisons in docs/jit.md (session 7)."""
import os, subprocess, sys, time, statistics, shlex

def idle_frac(dt=0.3):
    def rd():
        with open('/proc/stat') as f:
            p = [int(x) for x in f.readline().split()[1:]]
        return p[3] + p[4], sum(p)
    i0, t0 = rd(); time.sleep(dt); i1, t1 = rd()
    return (i1 - i0) / max(1, t1 - t0)

def wait_idle():
    need = float(os.environ.get('IDLE', '90')) / 100
    end = time.time() + float(os.environ.get('WAIT', '20'))
    while time.time() < end:
        if idle_frac() >= need:
            return True
    return False

runs, warm = int(sys.argv[1]), int(sys.argv[2])
cmds = sys.argv[3:]
res = [[] for _ in cmds]
cpu = [[] for _ in cmds]
loads = []
for r in range(warm + runs):
    order = list(range(len(cmds)))
    if r % 2:
        order.reverse()
    for i in order:
        wait_idle()
        t = time.perf_counter()
        p = subprocess.Popen(shlex.split(cmds[i]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, st, ru = os.wait4(p.pid, 0)
        dt = (time.perf_counter() - t) * 1e3
        if st != 0:
            print('FAIL', cmds[i], st, file=sys.stderr)
        if r >= warm:
            res[i].append(dt)
            cpu[i].append((ru.ru_utime + ru.ru_stime) * 1e3)
    loads.append(os.getloadavg()[0])
for c, v, u in zip(cmds, res, cpu):
    print('%10.2f ms  (min %.2f, cpu %.2f, n=%d)  %s' % (statistics.median(v), min(v), statistics.median(u), len(v), c))
print('load %.2f-%.2f' % (min(loads), max(loads)))
