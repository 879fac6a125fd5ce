#!/usr/bin/env python3
"""Write VHD files by the spec (Virtual Hard Disk Image Format Specification
v1.0), independently of src/formats/vhd.c, for tests qemu-img cannot make:
differencing children with partial sector bitmaps and parent locators,
dynamic disks with unusual block sizes, odd header offsets, 511-byte footers,
the saved-state flag, and parent loops.

  vhd_craft.py dynamic OUT RAW [opts]     dynamic disk holding RAW's bytes
  vhd_craft.py fixed OUT RAW [opts]       fixed disk (RAW + footer)
  vhd_craft.py child OUT PARENT.vhd PARENT.raw EXPECTED.raw [opts]
        differencing child: a deterministic set of sectors is written in the
        child (bits set), the rest reads from the parent; EXPECTED.raw gets
        what a correct reader must return.
  vhd_craft.py uuid FILE                  print the footer's unique id (hex)
  vhd_craft.py setparent FILE UUIDHEX     rewrite a child's parent UUID
  vhd_craft.py poke FILE OFFSET HEX [--fix]  overwrite bytes; --fix recomputes
        the footer checksums (end of file and offset 0) and header checksum
  vhd_craft.py setbat FILE INDEX SECTOR   set one BAT entry (found through the
        footer and dynamic header) to SECTOR (0xFFFFFFFF: unallocated)

options: --block-size N  --data-offset N  --footer511  --saved-state
         --creator XXXX  --uuid HEX  --loc CODE=PATH (repeatable, in order)
         --name NAME (parent unicode name)  --loc-sectors (data length in
         sectors instead of bytes)  --seed N  --full-bitmaps (child blocks own
         every sector, except the all-clear ones: libvhdi reads only those)
"""
import os
import random
import struct
import sys
import uuid as uuidmod

SECTOR = 512
UNUSED = 0xFFFFFFFF


def checksum(buf, skip):
    s = sum(buf[:skip]) + sum(buf[skip + 4:])
    return (~s) & 0xFFFFFFFF


def chs(size):
    """CHS geometry per the spec's appendix algorithm."""
    total = size // SECTOR
    if total > 65535 * 16 * 255:
        total = 65535 * 16 * 255
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = (cth + 1023) // 1024
        if heads < 4:
            heads = 4
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def footer(dtype, size, data_offset, uid, creator=b'win ', saved=False):
    f = bytearray(SECTOR)
    c, h, s = chs(size)
    struct.pack_into('>8sIIQI4sI4sQQHBBII16sB', f, 0, b'conectix', 2, 0x00010000,
                     data_offset, 0x20000000, creator, 0x000A0000, b'Wi2k', size, size,
                     c, h, s, dtype, 0, uid, 1 if saved else 0)
    struct.pack_into('>I', f, 64, checksum(f, 64))
    return bytes(f)


def utf16le(s):
    return s.encode('utf-16-le')


def build_dynamic(size, block_size, blocks, dtype=3, data_offset=512, parent_uuid=None,
                  parent_name='', locs=(), loc_sectors=False, uid=None, creator=b'win ',
                  footer511=False, saved=False):
    """blocks: {index: (bitmap bytes, data bytes of block_size)}."""
    uid = uid or uuidmod.uuid4().bytes
    nbat = (size + block_size - 1) // block_size
    bitmap_size = ((block_size // SECTOR + 7) // 8 + SECTOR - 1) // SECTOR * SECTOR
    table_offset = (data_offset + 1024 + SECTOR - 1) // SECTOR * SECTOR
    bat_bytes = (nbat * 4 + SECTOR - 1) // SECTOR * SECTOR
    pos = table_offset + bat_bytes
    loc_entries = []
    loc_data = []
    for code, path in locs:
        data = utf16le(path) if code in ('W2ru', 'W2ku') else path.encode()
        space = (len(data) + SECTOR - 1) // SECTOR * SECTOR or SECTOR
        length = (len(data) + SECTOR - 1) // SECTOR if loc_sectors else len(data)
        loc_entries.append((code.encode(), space, length, pos))
        loc_data.append((pos, data))
        pos += space
    bat = [UNUSED] * nbat
    block_data = []
    for idx in sorted(blocks):
        bat[idx] = pos // SECTOR
        bm, data = blocks[idx]
        block_data.append((pos, bm + data))
        pos += bitmap_size + block_size
    end = pos
    hdr = bytearray(1024)
    struct.pack_into('>8sQQIIII', hdr, 0, b'cxsparse', 0xFFFFFFFFFFFFFFFF, table_offset,
                     0x00010000, nbat, block_size, 0)
    if parent_uuid:
        hdr[40:56] = parent_uuid
        name = parent_name.encode('utf-16-be')[:512]
        hdr[64:64 + len(name)] = name
    for i, (code, space, length, off) in enumerate(loc_entries):
        struct.pack_into('>4sIIIQ', hdr, 576 + 24 * i, code, space, length, 0, off)
    struct.pack_into('>I', hdr, 36, checksum(hdr, 36))
    ft = footer(dtype, size, data_offset, uid, creator, saved)
    img = bytearray(end)
    img[0:SECTOR] = ft
    img[data_offset:data_offset + 1024] = hdr
    img[table_offset:table_offset + nbat * 4] = struct.pack('>%dI' % nbat, *bat)
    for off, data in loc_data:
        img[off:off + len(data)] = data
    for off, data in block_data:
        img[off:off + len(data)] = data
    img += ft[:511] if footer511 else ft
    return bytes(img), uid


def blocks_from_raw(raw, block_size):
    bitmap_size = ((block_size // SECTOR + 7) // 8 + SECTOR - 1) // SECTOR * SECTOR
    blocks = {}
    for i in range(0, len(raw), block_size):
        chunk = raw[i:i + block_size]
        if chunk.count(0) != len(chunk):
            chunk = chunk + bytes(block_size - len(chunk))
            blocks[i // block_size] = (b'\xff' * bitmap_size, chunk)
    return blocks


def set_bit(bm, sector):
    bm[sector // 8] |= 0x80 >> (sector % 8)


def make_child(parent_raw, block_size, seed, full=False):
    """Sectors the child owns: per block a mix of runs. Returns blocks and the
    expected raw content."""
    rnd = random.Random(seed)
    size = len(parent_raw)
    bitmap_size = ((block_size // SECTOR + 7) // 8 + SECTOR - 1) // SECTOR * SECTOR
    spb = block_size // SECTOR
    expect = bytearray(parent_raw)
    blocks = {}
    nblocks = (size + block_size - 1) // block_size
    for b in range(nblocks):
        kind = b % 4
        if kind == 3:
            continue  # unallocated: parent
        bm = bytearray(bitmap_size)
        # sectors under clear bits hold garbage a reader must not return
        data = bytearray(b'\xee' * block_size)
        nsec = min(spb, (size - b * block_size) // SECTOR)
        if full and kind != 2:
            owned = list(range(nsec))
        elif kind == 0:
            owned = [s for s in range(nsec) if rnd.random() < 0.3]
        elif kind == 1:
            start = rnd.randrange(nsec)
            owned = list(range(start, min(nsec, start + rnd.randrange(1, 64))))
            owned += [0, nsec - 1]
        else:
            owned = []  # allocated, nothing set: all from parent
        for s in set(owned):
            set_bit(bm, s)
            payload = bytes([(b * 31 + s) & 0xff]) * 8 + rnd.randbytes(SECTOR - 8)
            data[s * SECTOR:(s + 1) * SECTOR] = payload
            off = b * block_size + s * SECTOR
            expect[off:off + SECTOR] = payload
        blocks[b] = (bytes(bm), bytes(data))
    return blocks, bytes(expect)


def read_footer_uuid(path):
    with open(path, 'rb') as f:
        f.seek(-SECTOR, 2)
        ft = f.read(SECTOR)
    return ft[68:84]


def fix_checksums(img):
    img = bytearray(img)
    for off in (0, len(img) - SECTOR):
        if img[off:off + 8] == b'conectix':
            struct.pack_into('>I', img, off + 64, 0)
            struct.pack_into('>I', img, off + 64, checksum(img[off:off + SECTOR], 64))
    ft = img[-SECTOR:]
    if ft[:8] == b'conectix' and struct.unpack('>I', ft[60:64])[0] in (3, 4):
        ho = struct.unpack('>Q', ft[16:24])[0]
        h = img[ho:ho + 1024]
        if h[:8] == b'cxsparse':
            struct.pack_into('>I', img, ho + 36, checksum(h, 36))
    return bytes(img)


def main(argv):
    opts = {'block_size': 2 << 20, 'data_offset': 512, 'footer511': False, 'saved': False,
            'creator': b'win ', 'uuid': None, 'locs': [], 'name': None, 'loc_sectors': False,
            'seed': 1, 'fix': False, 'full': False}
    args = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == '--block-size':
            i += 1
            opts['block_size'] = int(argv[i], 0)
        elif a == '--data-offset':
            i += 1
            opts['data_offset'] = int(argv[i], 0)
        elif a == '--footer511':
            opts['footer511'] = True
        elif a == '--saved-state':
            opts['saved'] = True
        elif a == '--creator':
            i += 1
            opts['creator'] = argv[i].encode().ljust(4, b'\0')[:4]
        elif a == '--uuid':
            i += 1
            opts['uuid'] = bytes.fromhex(argv[i])
        elif a == '--loc':
            i += 1
            code, path = argv[i].split('=', 1)
            opts['locs'].append((code, path))
        elif a == '--name':
            i += 1
            opts['name'] = argv[i]
        elif a == '--loc-sectors':
            opts['loc_sectors'] = True
        elif a == '--seed':
            i += 1
            opts['seed'] = int(argv[i])
        elif a == '--full-bitmaps':
            opts['full'] = True
        elif a == '--fix':
            opts['fix'] = True
        else:
            args.append(a)
        i += 1
    cmd = args[0]
    if cmd == 'dynamic':
        out, rawp = args[1], args[2]
        raw = open(rawp, 'rb').read()
        img, _ = build_dynamic(len(raw), opts['block_size'],
                               blocks_from_raw(raw, opts['block_size']),
                               data_offset=opts['data_offset'], uid=opts['uuid'],
                               creator=opts['creator'], footer511=opts['footer511'],
                               saved=opts['saved'])
        open(out, 'wb').write(img)
    elif cmd == 'fixed':
        out, rawp = args[1], args[2]
        raw = open(rawp, 'rb').read()
        ft = footer(2, len(raw), 0xFFFFFFFFFFFFFFFF, opts['uuid'] or uuidmod.uuid4().bytes,
                    opts['creator'], opts['saved'])
        open(out, 'wb').write(raw + (ft[:511] if opts['footer511'] else ft))
    elif cmd == 'child':
        out, pvhd, praw, expp = args[1:5]
        parent_raw = open(praw, 'rb').read()
        blocks, expect = make_child(parent_raw, opts['block_size'], opts['seed'],
                                    opts['full'])
        name = opts['name'] if opts['name'] is not None else os.path.basename(pvhd)
        img, _ = build_dynamic(len(parent_raw), opts['block_size'], blocks, dtype=4,
                               data_offset=opts['data_offset'],
                               parent_uuid=read_footer_uuid(pvhd), parent_name=name,
                               locs=opts['locs'], loc_sectors=opts['loc_sectors'],
                               uid=opts['uuid'], creator=opts['creator'])
        open(out, 'wb').write(img)
        open(expp, 'wb').write(expect)
    elif cmd == 'uuid':
        print(read_footer_uuid(args[1]).hex())
    elif cmd == 'setparent':
        img = bytearray(open(args[1], 'rb').read())
        ho = struct.unpack('>Q', img[-SECTOR + 16:-SECTOR + 24])[0]
        img[ho + 40:ho + 56] = bytes.fromhex(args[2])
        open(args[1], 'wb').write(fix_checksums(img))
    elif cmd == 'setbat':
        img = bytearray(open(args[1], 'rb').read())
        ho = struct.unpack('>Q', img[-SECTOR + 16:-SECTOR + 24])[0]
        table = struct.unpack('>Q', img[ho + 16:ho + 24])[0]
        nbat = struct.unpack('>I', img[ho + 28:ho + 32])[0]
        idx = int(args[2], 0)
        if idx >= nbat:
            sys.exit('BAT has %d entries' % nbat)
        struct.pack_into('>I', img, table + 4 * idx, int(args[3], 0))
        open(args[1], 'wb').write(img)
    elif cmd == 'poke':
        img = bytearray(open(args[1], 'rb').read())
        off = int(args[2], 0)
        if off < 0:
            off += len(img)
        data = bytes.fromhex(args[3])
        img[off:off + len(data)] = data
        if opts['fix']:
            img = fix_checksums(img)
        open(args[1], 'wb').write(img)
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv[1:])
