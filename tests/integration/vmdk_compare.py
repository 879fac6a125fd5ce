#!/usr/bin/python3
"""Field-by-field comparison of two streamOptimized VMDKs of the same raw disk:
ours (vdisk convert) against VMware's (open-vmdk vmdk-convert).

    vmdk_compare.py OURS.vmdk THEIRS.vmdk

Compares the sparse header (and the footer, where there is one), the
descriptor (each key), the marker layout (walked from overHead to the end:
grain markers, GT/GD/footer markers, end-of-stream) and the set of grains
present. Every difference must be in ALLOWED below, each explained in
docs/vmdk.md ("Compared with VMware's vmdk-convert"); any other difference is
printed and the exit status is 1. Uses only the standard library.
"""
import struct
import sys

SECTOR = 512
GD_AT_END = 0xFFFFFFFFFFFFFFFF

# Differences we keep on purpose; docs/vmdk.md gives the reason for each.
ALLOWED = {
    # Layout: ours is written front to back (FUSE writes, S3 multipart), so the
    # GD and GTs go after the grains with markers and a footer, the form the
    # VMDK 5.0 spec gives for stream-optimized extents (and ovftool writes);
    # vmdk-convert seeks back and puts GD and GTs before the grains.
    "header.gdOffset",
    "header.overHead",
    "layout.gt_markers",
    "layout.gd_marker",
    "layout.footer",
    # Random per disk by definition.
    "descriptor.CID",
    "descriptor.ddb.longContentID",
    # vmdk-convert always names the extent "disk"; we name the file itself.
    "descriptor.extent",
    # VMware's hosted tools write ddb.uuid; vmdk-convert does not.
    "descriptor.ddb.uuid(ours only)",
}

HDR = struct.Struct("<4sIIQQQQIQQQ4sH")  # up to compressAlgorithm (79 bytes)
HDR_NAMES = ("magic", "version", "flags", "capacity", "grainSize", "descriptorOffset",
             "descriptorSize", "numGTEsPerGT", "rgdOffset", "gdOffset", "overHead",
             "newlineChars", "compressAlgorithm")


def header(buf):
    vals = HDR.unpack_from(buf, 0)
    h = dict(zip(HDR_NAMES, vals))
    h["uncleanShutdown"] = buf[72]
    h["newlineChars"] = h["newlineChars"][1:]  # byte 72 is uncleanShutdown
    return h


def descriptor(data, h):
    off, size = h["descriptorOffset"] * SECTOR, h["descriptorSize"] * SECTOR
    text = data[off:off + size].split(b"\0", 1)[0].decode()
    keys, extents = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("RW ", "RDONLY ", "NOACCESS ")):
            extents.append(line)
            continue
        k, _, v = line.partition("=")
        keys[k.strip()] = v.strip().strip('"')
    return keys, extents


def layout(data, h):
    """Walk the stream from overHead: returns counts and the grain LBAs."""
    pos, end = h["overHead"] * SECTOR, len(data)
    out = {"grains": [], "gt_markers": 0, "gd_marker": 0, "footer": 0, "eos_at_end": False,
           "other": []}
    while pos + 16 <= end:
        lba, size = struct.unpack_from("<QI", data, pos)
        if size:
            out["grains"].append(lba)
            pos += -(-(12 + size) // SECTOR) * SECTOR
            continue
        mtype = struct.unpack_from("<I", data, pos + 12)[0]
        if mtype == 0:
            out["eos_at_end"] = pos + SECTOR == end
            if lba == 0 and data[pos:pos + SECTOR] == bytes(SECTOR):
                pos += SECTOR
                if pos == end:
                    break
                # A zero sector that is not the end: GD/GT data (vmdk-convert)
                # or padding. Keep walking sector by sector.
                continue
        if mtype == 1:
            out["gt_markers"] += 1
        elif mtype == 2:
            out["gd_marker"] += 1
        elif mtype == 3:
            out["footer"] += 1
            out["footer_header"] = header(data[pos + SECTOR:pos + 2 * SECTOR])
        else:
            out["other"].append((pos, mtype))
        pos += SECTOR + lba * SECTOR
    return out


def main():
    ours_b, theirs_b = (open(p, "rb").read() for p in sys.argv[1:3])
    ho, ht = header(ours_b), header(theirs_b)
    diffs = []

    def diff(key, a, b):
        if a != b:
            diffs.append((key, a, b))

    for k in HDR_NAMES + ("uncleanShutdown",):
        diff("header." + k, ho[k], ht[k])
    do, eo = descriptor(ours_b, ho)
    dt, et = descriptor(theirs_b, ht)
    for k in sorted(set(do) | set(dt)):
        if k not in dt:
            diffs.append(("descriptor.%s(ours only)" % k, do[k], None))
        elif k not in do:
            diffs.append(("descriptor.%s(theirs only)" % k, None, dt[k]))
        else:
            diff("descriptor." + k, do[k], dt[k])
    # Extent lines: same access, size and type; the file name may differ.
    so = [e.rsplit(" ", 1) for e in eo]
    st = [e.rsplit(" ", 1) for e in et]
    diff("descriptor.extent_size", [a for a, _ in so], [a for a, _ in st])
    diff("descriptor.extent", eo, et)
    lo, lt = layout(ours_b, ho), layout(theirs_b, ht)
    diff("layout.grains", lo["grains"], lt["grains"])
    diff("layout.grains_in_lba_order", lo["grains"] == sorted(lo["grains"]), True)
    for k in ("gt_markers", "gd_marker", "footer", "eos_at_end", "other"):
        diff("layout." + k, lo[k], lt[k])
    # Our footer must be the header with only gdOffset filled in (VMDK 5.0).
    if "footer_header" in lo:
        fh = dict(lo["footer_header"])
        if ho["gdOffset"] != GD_AT_END:
            diffs.append(("ours.header_gdOffset_not_GD_AT_END", ho["gdOffset"], GD_AT_END))
        for k in HDR_NAMES:
            if k != "gdOffset" and fh[k] != ho[k]:
                diffs.append(("ours.footer." + k, fh[k], ho[k]))
    bad = 0
    for key, a, b in diffs:
        ok = key in ALLOWED
        bad += not ok
        print("%s %s: ours %r, vmdk-convert %r" % ("allowed" if ok else "DIFFERENT", key,
                                                   a if key != "layout.grains" else len(a),
                                                   b if key != "layout.grains" else len(b)))
    print("%d differences, %d not allowed; %d grains in both" % (len(diffs), bad,
                                                                 len(lo["grains"])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
