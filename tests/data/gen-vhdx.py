#!/usr/bin/env python3
"""Build VHDX test images straight from [MS-VHDX] v20160714, independently of
the C reader, together with the raw bytes each one must read as.

  gen-vhdx.py diff PARENT.vhdx PARENT.raw OUTDIR [--no-relative] [--bad-linkage]
                   [--linkage2] [--relpath=WINDOWS\\PATH] [--abspath=PATH] [--name=child]
      Differencing child (OUTDIR/child.avhdx) of a (qemu-made) parent, with
      FULLY/PARTIALLY_PRESENT (sector bitmap), ZERO, UNMAPPED, UNDEFINED and
      NOT_PRESENT blocks; OUTDIR/child.raw is what it must read as
      (PARENT.raw comes from an independent reader: qemu-img convert).
      --relpath and --abspath set the locator's relative_path and
      absolute_win32_path (default .\\PARENT and C:\\VMs\\PARENT).
  gen-vhdx.py log BASE.vhdx BASE.raw OUTDIR
      Copies BASE (clean, qemu-made, block_size=1M, 8 MiB) to OUTDIR/log.vhdx
      with a dirty log of 3 entries (wrapping around the log's end, plus an
      older stale sequence), which allocate blocks, zero and rewrite payload
      pages, drop a block, and grow the virtual size through the metadata;
      OUTDIR/log.raw is the expected view. Also OUTDIR/logbad.vhdx whose third
      entry has a bad CRC, with OUTDIR/logbad.raw (only entries 1-2 apply),
      and lognowrap.vhdx/logbadnowrap.vhdx: the same entries from log offset 0.
  gen-vhdx.py 4k OUTDIR
      A dynamic VHDX with 4096-byte logical sectors (OUTDIR/4k.vhdx, 4k.raw)
      and a 4K differencing child of it (4kchild.avhdx, 4kchild.raw).
  gen-vhdx.py fuzzseeds OUTDIR IMG...
      Seeds for tests/fuzz: each IMG in fuzz_vhdx's sparse form (u32 file
      size, then {u32 offset, u16 length, bytes} for each non-zero 4 KiB
      page, first 3 MiB + the BAT's and a few payload pages) into
      OUTDIR/fuzz_vhdx/, and small logs with valid, torn and wrapping
      entries (GUID 01..10) into OUTDIR/fuzz_vhdx_log/.
  gen-vhdx.py corrupt KIND IN OUT
      One damaged copy: hdr1, hdr-both, region1, region-both, bat-eof,
      blocksize, required-meta, required-region; bat-wrap (block 1's
      FileOffsetMB = 0xFFFFFFFFFFF, so that offset + block size wraps),
      bat-log, bat-bat, bat-meta (block 1 FULLY_PRESENT at the start of the
      log, BAT or metadata region).

Everything is deterministic (fixed random seed).
"""
import os
import random
import shutil
import struct
import sys
import uuid

MiB = 1 << 20
KiB = 1 << 10

_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _T.append(_c)


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    t = _T
    for b in data:
        c = (c >> 8) ^ t[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def with_crc(buf, at=4):
    buf = bytearray(buf)
    buf[at:at + 4] = b"\0\0\0\0"
    buf[at:at + 4] = struct.pack("<I", crc32c(bytes(buf)))
    return buf


def g(s):
    return uuid.UUID(s).bytes_le


GUID_BAT = g("2DC27766-F623-4200-9D64-115E9BFD4A08")
GUID_META = g("8B7CA206-4790-4B9A-B8FE-575F050F886E")
GUID_FP = g("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
GUID_VS = g("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
GUID_P83 = g("BECA12AB-B2E6-4523-93EF-C309E000C746")
GUID_LSS = g("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
GUID_PSS = g("CDA348C7-445D-4471-9CC9-E9885251C556")
GUID_PL = g("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
GUID_PL_TYPE = g("B04AEFB7-D19E-4A81-B789-25B8E9445913")

NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, FULLY, PARTIAL = 0, 1, 2, 3, 6, 7
SB_PRESENT = 6


def guid_str(b):
    return "{" + str(uuid.UUID(bytes_le=bytes(b))) + "}"


def header(seq, data_guid, log_guid=b"\0" * 16, log_off=MiB, log_len=MiB):
    h = bytearray(4096)
    h[0:4] = b"head"
    struct.pack_into("<Q", h, 8, seq)
    h[16:32] = uuid.UUID(int=seq * 7919 + 1).bytes_le  # FileWriteGuid
    h[32:48] = data_guid
    h[48:64] = log_guid
    struct.pack_into("<HHIQ", h, 64, 0, 1, log_len, log_off)
    return with_crc(h)


def region_table(entries):
    t = bytearray(64 * KiB)
    t[0:4] = b"regi"
    struct.pack_into("<I", t, 8, len(entries))
    for i, (gu, off, ln, req) in enumerate(entries):
        o = 16 + 32 * i
        t[o:o + 16] = gu
        struct.pack_into("<QII", t, o + 16, off, ln, req)
    return with_crc(t)


def utf16(s):
    return s.encode("utf-16-le")


def parent_locator(kv):
    n = len(kv)
    hdr = bytearray(20 + 12 * n)
    hdr[0:16] = GUID_PL_TYPE
    struct.pack_into("<HH", hdr, 16, 0, n)
    blob = bytearray()
    base = len(hdr)
    for i, (k, v) in enumerate(kv):
        kb, vb = utf16(k), utf16(v)
        ko = base + len(blob)
        blob += kb
        vo = base + len(blob)
        blob += vb
        struct.pack_into("<IIHH", hdr, 20 + 12 * i, ko, vo, len(kb), len(vb))
    return bytes(hdr + blob)


def metadata_region(bs, vsize, lss, pss, has_parent, locator=None, extra=None):
    items = [
        (GUID_FP, struct.pack("<II", bs, 2 if has_parent else 0), 4),
        (GUID_VS, struct.pack("<Q", vsize), 6),
        (GUID_P83, uuid.UUID(int=vsize ^ 0x1234).bytes_le, 6),
        (GUID_LSS, struct.pack("<I", lss), 6),
        (GUID_PSS, struct.pack("<I", pss), 6),
    ]
    if locator is not None:
        items.append((GUID_PL, locator, 4))
    if extra:
        items += extra
    r = bytearray(MiB)
    r[0:8] = b"metadata"
    struct.pack_into("<H", r, 10, len(items))
    off = 64 * KiB
    for i, (gu, data, flags) in enumerate(items):
        e = 32 + 32 * i
        r[e:e + 16] = gu
        struct.pack_into("<III", r, e + 16, off, len(data), flags)
        r[off:off + len(data)] = data
        off += (len(data) + 4095) // 4096 * 4096
    return r


def build(path, vsize, bs, lss, blocks, has_parent=False, locator=None, data_guid=None,
          pss=4096):
    """blocks: {blk: (state, data or None, sector_bits or None)}; data is the
    block's bytes (len bs) stored in the file for FULLY/PARTIAL; sector_bits is
    a list of 0/1 per logical sector of the block (PARTIAL only)."""
    cr = (1 << 23) * lss // bs
    nblocks = -(-vsize // bs)
    nchunks = -(-nblocks // cr)
    nent = nchunks * (cr + 1) if has_parent else nblocks + (nblocks - 1) // cr
    bat_len = max(MiB, -(-(nent * 8) // MiB) * MiB)
    log_off, meta_off, bat_off = MiB, 2 * MiB, 3 * MiB
    data_off = bat_off + bat_len
    bat = [0] * nent
    f = bytearray(data_off)
    f[0:8] = b"vhdxfile"
    creator = utf16("gen-vhdx.py")
    f[8:8 + len(creator)] = creator
    dg = data_guid or uuid.UUID(int=0xD47A + vsize).bytes_le
    f[64 * KiB:64 * KiB + 4096] = header(1, dg)
    f[128 * KiB:128 * KiB + 4096] = header(2, dg)
    rt = region_table([(GUID_BAT, bat_off, bat_len, 1), (GUID_META, meta_off, MiB, 1)])
    f[192 * KiB:256 * KiB] = rt
    f[256 * KiB:320 * KiB] = rt
    f[meta_off:meta_off + MiB] = metadata_region(bs, vsize, lss, pss, has_parent, locator)
    bitmaps = {}
    for blk in sorted(blocks):
        state, data, bits = blocks[blk]
        idx = blk + blk // cr
        if state in (FULLY, PARTIAL):
            off = len(f)
            f += data
            bat[idx] = state | (off // MiB) << 20
            if state == PARTIAL:
                chunk = blk // cr
                bm = bitmaps.setdefault(chunk, bytearray(MiB))
                first = (blk % cr) * (bs // lss)
                for i, b in enumerate(bits):
                    if b:
                        s = first + i
                        bm[s // 8] |= 1 << (s % 8)
        else:
            bat[idx] = state
    for chunk, bm in sorted(bitmaps.items()):
        off = len(f)
        f += bm
        bat[chunk * (cr + 1) + cr] = SB_PRESENT | (off // MiB) << 20
    for i, e in enumerate(bat):
        struct.pack_into("<Q", f, bat_off + 8 * i, e)
    with open(path, "wb") as out:
        out.write(f)


# ---- minimal independent parsing of an existing (qemu-made) VHDX ----

def parse(path):
    with open(path, "rb") as fh:
        d = fh.read()
    hs = []
    for off in (64 * KiB, 128 * KiB):
        h = d[off:off + 4096]
        if h[0:4] == b"head" and with_crc(h) == bytearray(h):
            hs.append((struct.unpack_from("<Q", h, 8)[0], off))
    seq, hoff = max(hs)
    h = d[hoff:hoff + 4096]
    info = {"hdr_off": hoff, "data_guid": h[32:48],
            "log_len": struct.unpack_from("<I", h, 68)[0],
            "log_off": struct.unpack_from("<Q", h, 72)[0]}
    rt = d[192 * KiB:256 * KiB]
    for i in range(struct.unpack_from("<I", rt, 8)[0]):
        e = 16 + 32 * i
        off, ln = struct.unpack_from("<QI", rt, e + 16)
        if rt[e:e + 16] == GUID_BAT:
            info["bat_off"] = off
        elif rt[e:e + 16] == GUID_META:
            info["meta_off"] = off
    m = info["meta_off"]
    for i in range(struct.unpack_from("<H", d, m + 10)[0]):
        e = m + 32 + 32 * i
        off, ln = struct.unpack_from("<II", d, e + 16)
        gu = d[e:e + 16]
        if gu == GUID_FP:
            info["bs"] = struct.unpack_from("<I", d, m + off)[0]
            info["fp_abs"] = m + off
        elif gu == GUID_VS:
            info["vsize"] = struct.unpack_from("<Q", d, m + off)[0]
            info["vs_abs"] = m + off
        elif gu == GUID_LSS:
            info["lss"] = struct.unpack_from("<I", d, m + off)[0]
    info["cr"] = (1 << 23) * info["lss"] // info["bs"]
    return d, info


def bat_abs(info, blk):
    return info["bat_off"] + 8 * (blk + blk // info["cr"])


# ---- scenarios ----

def cmd_diff(parent, parent_raw, outdir, no_relative=False, bad_linkage=False, relpath=None,
             linkage2=False, name="child", abspath=None):
    rng = random.Random(7 + len(name))
    _, pi = parse(parent)
    with open(parent_raw, "rb") as fh:
        praw = fh.read()
    vsize = pi["vsize"]
    bs, lss = 2 * MiB, 512
    spb = bs // lss
    linkage = guid_str(pi["data_guid"])
    if bad_linkage:
        linkage = "{01234567-89ab-cdef-0123-456789abcdef}"
    pname = os.path.basename(parent)
    kv = [("parent_linkage", linkage)]
    if linkage2:  # the right GUID only in parent_linkage2
        kv = [("parent_linkage", "{01234567-89ab-cdef-0123-456789abcdef}"),
              ("parent_linkage2", linkage)]
    if not no_relative:
        kv.append(("relative_path", relpath or ".\\" + pname))
    kv += [("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\VMs\\" + pname),
           ("absolute_win32_path", abspath or "C:\\VMs\\" + pname)]
    blocks = {}
    exp = bytearray(praw[:vsize].ljust(vsize, b"\0"))
    # block 0: fully present in the child
    d0 = rng.randbytes(bs)
    blocks[0] = (FULLY, d0, None)
    exp[0:bs] = d0
    # block 1: partially present, runs of sectors of varied lengths
    d1 = rng.randbytes(bs)
    bits = []
    while len(bits) < spb:
        bits += [len(bits) // 7 % 2] * rng.choice([1, 1, 2, 3, 8, 64, 300])
    bits = bits[:spb]
    blocks[1] = (PARTIAL, d1, bits)
    for s, b in enumerate(bits):
        if b:
            exp[bs + s * lss:bs + (s + 1) * lss] = d1[s * lss:(s + 1) * lss]
    # block 2 NOT_PRESENT (parent), 3 ZERO, 4 UNMAPPED (parent), 5 UNDEFINED (parent)
    blocks[2] = (NOT_PRESENT, None, None)
    blocks[3] = (ZERO, None, None)
    exp[3 * bs:4 * bs] = bytes(bs)
    blocks[4] = (UNMAPPED, None, None)
    blocks[5] = (UNDEFINED, None, None)
    # block 6: partial with every sector from the child; block 7: none
    d6 = rng.randbytes(bs)
    blocks[6] = (PARTIAL, d6, [1] * spb)
    exp[6 * bs:7 * bs] = d6
    blocks[7] = (PARTIAL, rng.randbytes(bs), [0] * spb)
    os.makedirs(outdir, exist_ok=True)
    build(os.path.join(outdir, name + ".avhdx"), vsize, bs, lss, blocks, has_parent=True,
          locator=parent_locator(kv))
    with open(os.path.join(outdir, name + ".raw"), "wb") as fh:
        fh.write(exp)


def log_entry(seq, tail, guid, flushed, last, descs):
    """descs: ("data", file_off, 4096 bytes) or ("zero", file_off, length)."""
    count = len(descs)
    dsec = -(-(64 + 32 * count) // 4096)
    datas = [d for d in descs if d[0] == "data"]
    total = (dsec + len(datas)) * 4096
    e = bytearray(total)
    e[0:4] = b"loge"
    struct.pack_into("<IIQII", e, 8, total, tail, seq, count, 0)
    e[32:48] = guid
    struct.pack_into("<QQ", e, 48, flushed, last)
    ds = dsec * 4096
    for i, d in enumerate(descs):
        o = 64 + 32 * i
        if d[0] == "zero":
            e[o:o + 4] = b"zero"
            struct.pack_into("<IQQQ", e, o + 4, 0, d[2], d[1], seq)
        else:
            page = d[2]
            e[o:o + 4] = b"desc"
            e[o + 4:o + 8] = page[4092:4096]
            e[o + 8:o + 16] = page[0:8]
            struct.pack_into("<QQ", e, o + 16, d[1], seq)
            e[ds:ds + 4] = b"data"
            struct.pack_into("<I", e, ds + 4, seq >> 32)
            e[ds + 8:ds + 4092] = page[8:4092]
            struct.pack_into("<I", e, ds + 4092, seq & 0xFFFFFFFF)
            ds += 4096
    return with_crc(e)


def put_ring(f, log_off, log_len, pos, entry):
    for i in range(0, len(entry), 4096):
        p = log_off + (pos + i) % log_len
        f[p:p + 4096] = entry[i:i + 4096]


def cmd_log(base, base_raw, outdir):
    rng = random.Random(11)
    d, info = parse(base)
    assert info["bs"] == MiB and info["vsize"] == 8 * MiB, "expects block_size=1M, 8 MiB"
    with open(base_raw, "rb") as fh:
        raw = bytearray(fh.read())
    f = bytearray(d)
    bs = info["bs"]
    old_size = len(f)
    lguid = uuid.UUID("5a1e0d0c-1234-4abc-8def-0123456789ab").bytes_le
    log_off, log_len = info["log_off"], info["log_len"]

    def page_of(buf, off):
        p = off // 4096 * 4096
        return p, bytearray(buf[p:p + 4096])

    view = bytearray(f)  # the file as the log leaves it, to build later pages
    x = (old_size + MiB - 1) // MiB * MiB
    # E1: allocate block 3 at x (payload written directly, file extended),
    #     zero 64 KiB of block 0's payload in the file.
    r3 = rng.randbytes(bs)
    f[len(f):x] = bytes(x - len(f))
    f += r3
    view[len(view):] = bytes(len(f) - len(view))
    view[x:x + bs] = r3
    b0 = struct.unpack_from("<Q", d, bat_abs(info, 0))[0]
    assert b0 & 7 == FULLY, "block 0 must be allocated in the base"
    b0off = (b0 >> 20) << 20
    p, pg = page_of(view, bat_abs(info, 3))
    struct.pack_into("<Q", pg, bat_abs(info, 3) - p, FULLY | (x // MiB) << 20)
    view[p:p + 4096] = pg
    view[b0off + 128 * KiB:b0off + 192 * KiB] = bytes(64 * KiB)
    raw[3 * MiB:4 * MiB] = r3
    raw[128 * KiB:192 * KiB] = bytes(64 * KiB)
    # E2: rewrite a payload page of block 5, allocate block 6 beyond the real
    #     end of file (reads zeros), grow the virtual size to 12 MiB.
    b5 = struct.unpack_from("<Q", d, bat_abs(info, 5))[0]
    assert b5 & 7 == FULLY, "block 5 must be allocated in the base"
    b5off = (b5 >> 20) << 20
    newpage = rng.randbytes(4096)
    view[b5off + 8 * KiB:b5off + 12 * KiB] = newpage
    raw[5 * MiB + 8 * KiB:5 * MiB + 12 * KiB] = newpage
    p6, pg6 = page_of(view, bat_abs(info, 6))
    struct.pack_into("<Q", pg6, bat_abs(info, 6) - p6, FULLY | (x // MiB + 1) << 20)
    view[p6:p6 + 4096] = pg6
    raw[6 * MiB:7 * MiB] = bytes(MiB)
    pv, pgv = page_of(view, info["vs_abs"])
    struct.pack_into("<Q", pgv, info["vs_abs"] - pv, 12 * MiB)
    view[pv:pv + 4096] = pgv
    raw += bytes(4 * MiB)
    last = x + 2 * MiB
    # E3: block 2 becomes ZERO.
    p2, pg2 = page_of(view, bat_abs(info, 2))
    struct.pack_into("<Q", pg2, bat_abs(info, 2) - p2, ZERO)
    view[p2:p2 + 4096] = pg2
    raw_bad = bytearray(raw)
    raw[2 * MiB:3 * MiB] = bytes(MiB)
    f0 = bytearray(f)

    def place(tail):
        """The file with E1-E3 written from log offset tail (Tail = tail in
        every entry) and an older complete sequence in the middle of the log;
        returns it and the log offset of E3."""
        out = bytearray(f0)
        e1 = log_entry(1000, tail, lguid, old_size, len(f0),
                       [("data", p, bytes(pg)), ("zero", b0off + 128 * KiB, 64 * KiB)])
        e2 = log_entry(1001, tail, lguid, len(f0), last,
                       [("data", b5off + 8 * KiB, newpage), ("data", p6, bytes(pg6)),
                        ("data", pv, bytes(pgv))])
        e3 = log_entry(1002, tail, lguid, len(f0), last, [("data", p2, bytes(pg2))])
        stale_pos = log_len // 2
        bogus = bytes(4096)
        stale1 = log_entry(990, stale_pos, lguid, old_size, old_size, [("data", p, bogus)])
        stale2 = log_entry(991, stale_pos, lguid, old_size, old_size, [("data", p2, bogus)])
        put_ring(out, log_off, log_len, stale_pos, stale1)
        put_ring(out, log_off, log_len, stale_pos + len(stale1), stale2)
        pos = tail
        for e in (e1, e2, e3):
            put_ring(out, log_off, log_len, pos, e)
            pos = (pos + len(e)) % log_len
        # Point the current header at the log.
        h = bytearray(out[info["hdr_off"]:info["hdr_off"] + 4096])
        h[48:64] = lguid
        out[info["hdr_off"]:info["hdr_off"] + 4096] = with_crc(h)
        return out, (tail + len(e1) + len(e2)) % log_len

    os.makedirs(outdir, exist_ok=True)

    def write(name, data):
        with open(os.path.join(outdir, name), "wb") as fh:
            fh.write(data)

    write("log.raw", raw)
    write("logbad.raw", raw_bad)
    # E1 wraps around the end of the log; and a variant from offset 0 (qemu,
    # which ignores Tail, replays that one the same way).
    for suffix, tail in (("", log_len - 4096), ("nowrap", 0)):
        img, e3_pos = place(tail)
        write("log%s.vhdx" % suffix, img)
        # Torn third entry: flip a byte of its data sector.
        img[log_off + (e3_pos + 4096) % log_len + 100] ^= 0xFF
        write("logbad%s.vhdx" % suffix, img)


def cmd_4k(outdir):
    rng = random.Random(4096)
    os.makedirs(outdir, exist_ok=True)
    vsize, bs, lss = 20 * MiB, 4 * MiB, 4096
    blocks, exp = {}, bytearray(vsize)
    d0 = rng.randbytes(bs)
    blocks[0] = (FULLY, d0, None)
    exp[0:bs] = d0
    blocks[1] = (ZERO, None, None)
    d3 = rng.randbytes(bs)
    blocks[3] = (FULLY, d3, None)
    exp[3 * bs:4 * bs] = d3
    d4 = rng.randbytes(bs)
    blocks[4] = (FULLY, d4, None)  # the last block: virtual size ends in it
    exp[4 * bs:5 * bs] = d4[:vsize - 4 * bs]
    dg = uuid.UUID("4b000000-0000-4000-8000-000000000004").bytes_le
    build(os.path.join(outdir, "4k.vhdx"), vsize, bs, lss, blocks, data_guid=dg)
    with open(os.path.join(outdir, "4k.raw"), "wb") as fh:
        fh.write(exp)
    # 4K differencing child: block 0 partial (per 4 KiB sector), block 1 fully
    # present over the parent's ZERO block, the rest from the parent.
    spb = bs // lss
    c0 = rng.randbytes(bs)
    bits = [rng.getrandbits(1) for _ in range(spb)]
    cexp = bytearray(exp)
    for s, b in enumerate(bits):
        if b:
            cexp[s * lss:(s + 1) * lss] = c0[s * lss:(s + 1) * lss]
    c1 = rng.randbytes(bs)
    cexp[bs:2 * bs] = c1
    kv = [("parent_linkage", guid_str(dg)), ("relative_path", ".\\4k.vhdx"),
          ("absolute_win32_path", "C:\\VMs\\4k.vhdx")]
    build(os.path.join(outdir, "4kchild.avhdx"), vsize, bs, lss,
          {0: (PARTIAL, c0, bits), 1: (FULLY, c1, None)}, has_parent=True,
          locator=parent_locator(kv))
    with open(os.path.join(outdir, "4kchild.raw"), "wb") as fh:
        fh.write(cexp)


def cmd_corrupt(kind, src, dst):
    d, info = parse(src)
    f = bytearray(d)
    if kind == "hdr1":
        f[64 * KiB + 200] ^= 1
    elif kind == "hdr-both":
        f[64 * KiB + 200] ^= 1
        f[128 * KiB + 200] ^= 1
    elif kind == "region1":
        f[192 * KiB + 100] ^= 1
    elif kind == "region-both":
        f[192 * KiB + 100] ^= 1
        f[256 * KiB + 100] ^= 1
    elif kind == "bat-eof":
        # block 1 -> fully present, far past the end of the file
        struct.pack_into("<Q", f, bat_abs(info, 1), FULLY | (4096 << 20))
    elif kind == "bat-wrap":
        # the largest FileOffsetMB (44 bits): offset + block size wraps 2^64
        struct.pack_into("<Q", f, bat_abs(info, 1), FULLY | (0xFFFFFFFFFFF << 20))
    elif kind in ("bat-log", "bat-bat", "bat-meta"):
        where = {"bat-log": "log_off", "bat-bat": "bat_off", "bat-meta": "meta_off"}[kind]
        struct.pack_into("<Q", f, bat_abs(info, 1), FULLY | info[where])
    elif kind == "blocksize":
        struct.pack_into("<I", f, info["fp_abs"], 3 * MiB)
    elif kind in ("required-meta", "required-region"):
        if kind == "required-meta":
            m = info["meta_off"]
            n = struct.unpack_from("<H", f, m + 10)[0]
            e = m + 32 + 32 * n
            f[e:e + 16] = g("11111111-2222-3333-4444-555555555555")
            struct.pack_into("<III", f, e + 16, 0, 0, 4)
            struct.pack_into("<H", f, m + 10, n + 1)
        else:
            for t in (192 * KiB, 256 * KiB):
                rt = bytearray(f[t:t + 64 * KiB])
                n = struct.unpack_from("<I", rt, 8)[0]
                e = 16 + 32 * n
                rt[e:e + 16] = g("11111111-2222-3333-4444-555555555555")
                struct.pack_into("<QII", rt, e + 16, 64 * MiB, MiB, 1)
                struct.pack_into("<I", rt, 8, n + 1)
                f[t:t + 64 * KiB] = with_crc(rt)
    else:
        sys.exit("unknown corruption " + kind)
    with open(dst, "wb") as fh:
        fh.write(f)


def sparse_seed(path, max_bytes=40000):
    with open(path, "rb") as fh:
        d = fh.read()
    out = bytearray(struct.pack("<I", len(d)))
    pages = [o for o in range(0, len(d), 4096) if any(d[o:o + 4096])]
    # structures first (they are what the parser reads), payload last
    pages.sort(key=lambda o: (o >= 4 * MiB, o))
    for o in pages:
        page = d[o:o + 4096].rstrip(b"\0")
        if len(out) + 6 + len(page) > max_bytes:
            break
        out += struct.pack("<IH", o, len(page)) + page
    return bytes(out)


def cmd_fuzzseeds(outdir, imgs):
    a = os.path.join(outdir, "fuzz_vhdx")
    b = os.path.join(outdir, "fuzz_vhdx_log")
    os.makedirs(a, exist_ok=True)
    os.makedirs(b, exist_ok=True)
    for img in imgs:
        name = os.path.basename(img).replace(".", "-") + ".seed"
        with open(os.path.join(a, name), "wb") as fh:
            fh.write(sparse_seed(img))
    guid = bytes(range(1, 17))
    rng = random.Random(5)
    page = rng.randbytes(4096)
    ln = 64 * KiB
    logs = {}
    lg = bytearray(ln)
    e1 = log_entry(3, ln - 4096, guid, 0, 8 * MiB,
                   [("data", 2 * MiB, page), ("zero", 3 * MiB, 64 * KiB)])
    e2 = log_entry(4, ln - 4096, guid, 0, 8 * MiB, [("data", 2 * MiB + 4096, page)])
    put_ring(lg, 0, ln, ln - 4096, e1)
    put_ring(lg, 0, ln, 4096, e2)
    logs["wrap"] = bytes(lg)
    lg2 = bytearray(lg)
    lg2[4096 + 4096 + 50] ^= 1
    logs["torn"] = bytes(lg2)
    lg3 = bytearray(ln)
    put_ring(lg3, 0, ln, 0, log_entry(9, 0, guid, 0, 0,
                                      [("data", 1 * MiB + i * 4096, page) for i in range(130)]))
    logs["many"] = bytes(lg3)
    for k, v in logs.items():
        with open(os.path.join(b, k + ".log"), "wb") as fh:
            fh.write(v)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "diff":
        rel = [a.split("=", 1)[1] for a in argv if a.startswith("--relpath=")]
        nm = [a.split("=", 1)[1] for a in argv if a.startswith("--name=")]
        ab = [a.split("=", 1)[1] for a in argv if a.startswith("--abspath=")]
        cmd_diff(argv[2], argv[3], argv[4], "--no-relative" in argv, "--bad-linkage" in argv,
                 rel[0] if rel else None, "--linkage2" in argv, nm[0] if nm else "child",
                 ab[0] if ab else None)
    elif cmd == "log":
        cmd_log(argv[2], argv[3], argv[4])
    elif cmd == "4k":
        cmd_4k(argv[2])
    elif cmd == "fuzzseeds":
        cmd_fuzzseeds(argv[2], argv[3:])
    elif cmd == "corrupt":
        cmd_corrupt(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
