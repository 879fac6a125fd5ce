#!/usr/bin/env python3
"""Write an empty Windows registry hive (a root key and nothing else).

hivex edits hives but cannot create one, and Debian ships none, so tests
make their own: this base, then `hivexregedit --merge` of a .reg file adds
the keys. Layout (the "regf" format as documented by the libyal project's
"Windows NT Registry File (REGF) format" and followed by hivex):

  0x0000  base block, 4096 bytes: "regf", seq1 = seq2, version 1.3,
          root cell offset, hive bins size, checksum (XOR of dwords 0..126)
  0x1000  one hive bin "hbin", 4096 bytes:
            +0x20  nk cell: the root key (flags: hive entry, no delete,
                   ASCII name), no subkeys, no values, its sk cell below
            +....  sk cell: a minimal self-relative security descriptor,
                   its own flink/blink, reference count 1
            +....  the rest: one free cell

usage: mkhive.py OUT [ROOTNAME]
"""
import struct
import sys


def cell(payload):
    size = (4 + len(payload) + 7) & ~7
    return struct.pack("<i", -size) + payload + b"\0" * (size - 4 - len(payload))


def main():
    out = sys.argv[1]
    name = (sys.argv[2] if len(sys.argv) > 2 else "ROOT").encode("ascii")
    nk_off = 0x20
    nk_len = len(cell(b"\0" * (76 + len(name))))
    sk_off = nk_off + nk_len
    nk = (b"nk" + struct.pack("<H", 0x2C) + struct.pack("<Q", 0)
          + struct.pack("<I", 0)            # access bits
          + struct.pack("<I", 0xFFFFFFFF)   # parent (none for the root)
          + struct.pack("<II", 0, 0)        # subkeys, volatile subkeys
          + struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF)
          + struct.pack("<I", 0)            # values
          + struct.pack("<I", 0xFFFFFFFF)   # value list
          + struct.pack("<I", sk_off)       # security
          + struct.pack("<I", 0xFFFFFFFF)   # class name
          + struct.pack("<IIIII", 0, 0, 0, 0, 0)
          + struct.pack("<HH", len(name), 0) + name)
    # self-relative SECURITY_DESCRIPTOR: revision 1, control SE_SELF_RELATIVE
    sd = struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0, 0, 0)
    sk = (b"sk" + struct.pack("<H", 0) + struct.pack("<II", sk_off, sk_off)
          + struct.pack("<II", 1, len(sd)) + sd)
    cells = cell(nk) + cell(sk)
    hbin_hdr = b"hbin" + struct.pack("<III", 0, 4096, 0) + struct.pack("<IQI", 0, 0, 0)
    used = len(hbin_hdr) + len(cells)
    free = struct.pack("<i", 4096 - used) + b"\0" * (4096 - used - 4)
    hbin = hbin_hdr + cells + free
    assert len(hbin) == 4096

    base = bytearray(4096)
    base[0:4] = b"regf"
    struct.pack_into("<II", base, 4, 1, 1)         # sequence numbers (clean)
    struct.pack_into("<Q", base, 12, 0)            # timestamp
    struct.pack_into("<IIII", base, 20, 1, 3, 0, 1)  # major, minor, type, format
    struct.pack_into("<II", base, 36, nk_off, 4096)  # root cell, hive bins size
    struct.pack_into("<I", base, 44, 1)            # clustering factor
    ck = 0
    for i in range(127):
        ck ^= struct.unpack_from("<I", base, i * 4)[0]
    struct.pack_into("<I", base, 508, ck)
    with open(out, "wb") as f:
        f.write(bytes(base) + hbin)


if __name__ == "__main__":
    main()
