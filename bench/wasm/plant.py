#!/usr/bin/env python3
"""plant.py CACHE_DIR OBJECT.o [KEY]: an experiment aid. Replaces the object of a JIT code cache
entry with OBJECT.o (an x86-64 ELF relocatable built outside psl, e.g. by `opt-19` and `llc-19
-relocation-model=pic` from IR that `PSL_JIT_DUMP` wrote and that was then edited), and signs it
with the cache's key (CACHE_DIR/mac.key, BLAKE2b-256 as src/jit/jit.c's cache_write does), so
that the next `psl run --tier jit` with PSL_CACHE_DIR=CACHE_DIR links it instead of compiling.
KEY (the entry's file name without .obj) is needed when the directory holds more than one entry:
fill a fresh directory with one `--tier jit` run of the module to get exactly one. The object
must define what psl's own object for that module defines (its tables and functions); psl's
loader checks the rest and declines a malformed object. Used in docs/jit.md ("Changes of
session 16") to measure a vectorised loop before writing the translator code for it."""
import glob
import hashlib
import os
import struct
import sys

MAGIC = b'PSLJIT01'
HDR = 8 + 32 + 8


def fail(msg):
    sys.stderr.write('plant.py: %s\n' % msg)
    sys.exit(2)


def main():
    if len(sys.argv) not in (3, 4):
        fail('usage: plant.py CACHE_DIR OBJECT.o [KEY]')
    d, objpath = sys.argv[1], sys.argv[2]
    try:
        key = open(os.path.join(d, 'mac.key'), 'rb').read()
    except OSError as e:
        fail('%s has no readable mac.key (%s): is it a psl cache directory?' % (d, e.strerror))
    if len(sys.argv) == 4:
        entries = [os.path.join(d, sys.argv[3] + '.obj')]
    else:
        entries = glob.glob(os.path.join(d, '*.obj'))
        if len(entries) != 1:
            fail('%s holds %d entries: name one (KEY)' % (d, len(entries)))
    entry = entries[0]
    try:
        old = open(entry, 'rb').read()
    except OSError as e:
        fail('cannot read %s: %s' % (entry, e.strerror))
    if len(old) < HDR or old[:8] != MAGIC:
        fail('%s is not a psl cache entry' % entry)
    try:
        obj = open(objpath, 'rb').read()
    except OSError as e:
        fail('cannot read %s: %s' % (objpath, e.strerror))
    if obj[:4] != b'\x7fELF':
        fail('%s is not an ELF object' % objpath)
    hdr = MAGIC + old[8:40] + struct.pack('<Q', len(obj))
    mac = hashlib.blake2b(hdr + obj, digest_size=32, key=key).digest()
    tmp = entry + '.plant.tmp'
    with open(tmp, 'wb') as f:
        f.write(hdr + obj + mac)
    os.replace(tmp, entry)
    print('%s: %d bytes of object (was %d)' % (entry, len(obj), len(old) - HDR - 32))


if __name__ == '__main__':
    main()
