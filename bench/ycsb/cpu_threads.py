#!/usr/bin/env python3
# CPU of each kind of thread of a YCSB run, from /proc: after DELAY seconds, over WINDOW seconds,
# the user and system time (% of one core) summed per process kind (the `psl bench ycsb` client,
# psl's workers, storage replicas, forwarder and coordinator, redis-server) and thread name.
# Divide by the run's ops/s for CPU per operation. Run it in the background, then the benchmark:
#   python3 bench/ycsb/cpu_threads.py 4 5 & psl bench ycsb --dir D --target psl-client ...
# usage: cpu_threads.py DELAY WINDOW
import os, sys, time, collections
def kind(cmd):
    if 'bench ycsb' in cmd: return 'client'
    if ' worker ' in cmd: return 'worker'
    if ' storage ' in cmd: return 'storage'
    if 'forwarder' in cmd: return 'forwarder'
    if 'coordinator' in cmd: return 'coord'
    if 'redis-server' in cmd: return 'redis'
    return None
def snap():
    d = {}
    for p in os.listdir('/proc'):
        if not p.isdigit(): continue
        try:
            cmd = open(f'/proc/{p}/cmdline').read().replace('\0', ' ')
            k = kind(cmd)
            if not k: continue
            for t in os.listdir(f'/proc/{p}/task'):
                s = open(f'/proc/{p}/task/{t}/stat').read()
                comm = s[s.index('(')+1:s.rindex(')')]
                f = s[s.rindex(')')+2:].split()
                d[(p, t)] = (k, comm, int(f[11]), int(f[12]))
        except OSError: pass
    return d
time.sleep(float(sys.argv[1])); w = float(sys.argv[2])
a = snap(); time.sleep(w); b = snap()
hz = os.sysconf('SC_CLK_TCK'); agg = collections.defaultdict(lambda: [0.0, 0.0])
for key, (k, c, u, s) in b.items():
    if key not in a: continue
    c = 'client-thread' if k == 'client' and c == 'psl' else c
    agg[(k, c)][0] += (u - a[key][2]) / hz / w * 100
    agg[(k, c)][1] += (s - a[key][3]) / hz / w * 100
tot = 0
for (k, c), (u, s) in sorted(agg.items(), key=lambda x: -(x[1][0] + x[1][1])):
    if u + s < 0.5: continue
    tot += u + s
    print(f'{k:10s} {c:16s} user {u:5.1f}%  sys {s:5.1f}%')
print(f'total {tot:.1f}%')
