#!/usr/bin/env python3
"""Make and patch VMDK files for the trust-boundary tests (issue 9),
independently of src/formats/vmdk.c. Each crafted image starts valid and
differs from it in one field.

  vmdk_craft.py sparse OUT CAPACITY [--grain SECTORS] [--gtes N] [--room ENTRIES]
        an empty hosted sparse extent (VMware "Virtual Disk Format 1.1",
        "Hosted Sparse Extent Header"): header at sector 0, no embedded
        descriptor, no redundant GD, the grain directory at sector 1 with
        all entries 0 (nothing allocated). --room makes the file hold a GD
        of that many entries (zeros; the file is sparse), so that a later
        poke of the grain size still finds its GD inside the file.
  vmdk_craft.py poke FILE OFFSET NBYTES VALUE   write VALUE little-endian
  vmdk_craft.py peek FILE OFFSET NBYTES         print the little-endian value
  vmdk_craft.py hint FILE NEWHINT
        rewrite parentFileNameHint="..." in a descriptor, embedded (a sparse
        extent: the descriptor area keeps its size, NUL-padded) or a file
  vmdk_craft.py gte FILE GT ENTRY [VALUE]
        print (or set) entry ENTRY of grain table GT of a sparse extent
  vmdk_craft.py gde FILE INDEX [VALUE]
        print (or set) grain directory entry INDEX
"""
import re
import struct
import sys

S = 512


def header(capacity, grain, gtes, gd_sector, overhead, flags=0x1):
    # magic, version, flags, capacity, grainSize, descriptorOffset,
    # descriptorSize, numGTEsPerGT, rgdOffset, gdOffset, overHead,
    # uncleanShutdown, four newline-detection bytes, compressAlgorithm
    h = struct.pack('<IIIQQQQIQQQBccccH', 0x564D444B, 1, flags, capacity, grain, 0, 0, gtes,
                    0, gd_sector, overhead, 0, b'\n', b' ', b'\r', b'\n', 0)
    return h.ljust(S, b'\0')


def sparse(argv):
    out, capacity = argv[0], int(argv[1], 0)
    opts = dict(zip(argv[2::2], argv[3::2]))
    grain = int(opts.get('--grain', '128'), 0)
    gtes = int(opts.get('--gtes', '512'), 0)
    ngts = -(-(-(-capacity // grain)) // gtes)
    room = max(ngts, int(opts.get('--room', '0'), 0))
    gd_sectors = -(-room * 4 // S)
    with open(out, 'wb') as f:
        f.write(header(capacity, grain, gtes, 1, 1 + gd_sectors))
        f.truncate(S * (1 + gd_sectors))


def field(path):
    return open(path, 'rb').read()


def hdr(path):
    b = field(path)[:S]
    (magic, version, flags, capacity, grain, desc_off, desc_len, gtes, rgd, gd, overhead) = \
        struct.unpack_from('<IIIQQQQIQQQ', b)
    return dict(grain=grain, desc_off=desc_off, desc_len=desc_len, gtes=gtes, rgd=rgd, gd=gd)


def poke(path, off, n, value):
    with open(path, 'r+b') as f:
        f.seek(off)
        f.write(value.to_bytes(n, 'little'))


def peek(path, off, n):
    with open(path, 'rb') as f:
        f.seek(off)
        return int.from_bytes(f.read(n), 'little')


def hint(path, new):
    data = field(path)
    if data[:4] == b'KDMV':
        h = hdr(path)
        start, length = h['desc_off'] * S, h['desc_len'] * S
    else:
        start, length = 0, len(data)
    text = data[start:start + length].split(b'\0', 1)[0].decode()
    text, n = re.subn(r'parentFileNameHint="[^"]*"', 'parentFileNameHint="%s"' % new, text)
    if n != 1:
        sys.exit('%s: no parentFileNameHint line' % path)
    raw = text.encode()
    if data[:4] == b'KDMV':
        if len(raw) > length:
            sys.exit('%s: new hint does not fit the descriptor area' % path)
        raw = raw.ljust(length, b'\0')
        with open(path, 'r+b') as f:
            f.seek(start)
            f.write(raw)
    else:
        open(path, 'wb').write(raw)


def main():
    cmd, argv = sys.argv[1], sys.argv[2:]
    if cmd == 'sparse':
        sparse(argv)
    elif cmd == 'poke':
        poke(argv[0], int(argv[1], 0), int(argv[2]), int(argv[3], 0))
    elif cmd == 'peek':
        print(peek(argv[0], int(argv[1], 0), int(argv[2])))
    elif cmd == 'hint':
        hint(argv[0], argv[1])
    elif cmd in ('gte', 'gde'):
        h = hdr(argv[0])
        if cmd == 'gde':
            off = h['gd'] * S + int(argv[1]) * 4
        else:
            gt = peek(argv[0], h['gd'] * S + int(argv[1]) * 4, 4)
            off = gt * S + int(argv[2]) * 4
        rest = argv[2:] if cmd == 'gde' else argv[3:]
        if rest:
            poke(argv[0], off, 4, int(rest[0], 0))
        else:
            print(peek(argv[0], off, 4))
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
