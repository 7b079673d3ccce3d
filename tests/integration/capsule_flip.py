# Flip one ciphertext byte of record SEQ of capsule ID in an LMDB file (every copy found), the
# way bit rot or a malicious host would. usage: capsule_flip.py data.mdb CAPSULE_ID_HEX SEQ
import sys, struct
path, idhex, seq = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = bytearray(open(path,'rb').read())
pat = bytes.fromhex(idhex) + struct.pack('<Q', seq)
n = 0; i = d.find(pat)
while i >= 0:
    if i >= 8 and d[i-8] in (1, 2) and d[i-7] in (1, 2):  # a record header: version 1 or 2, data kind
        d[i + 80 + 40] ^= 0xff; n += 1                  # a ciphertext byte
    i = d.find(pat, i + 1)
open(path,'wb').write(d)
print(n)
