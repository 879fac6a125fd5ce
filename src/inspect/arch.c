/*
 * The architecture a guest was built for, from the headers of its system
 * binaries: ELF (System V gABI, "ELF Header": e_ident[EI_CLASS] at 4,
 * e_ident[EI_DATA] at 5, e_machine at 18 in the file's byte order) and PE
 * (Microsoft PE/COFF: e_lfanew at 0x3c of the MZ header points at
 * "PE\0\0", followed by IMAGE_FILE_HEADER.Machine).
 */
#include <string.h>

#include "common/byteorder.h"
#include "inspect/inspect_int.h"

const char *vd_ins_elf_arch(const unsigned char *b, size_t len)
{
    if (len < 20 || memcmp(b, "\177ELF", 4) != 0)
        return NULL;
    unsigned cls = b[4], data = b[5];
    if ((cls != 1 && cls != 2) || (data != 1 && data != 2))
        return NULL;
    unsigned m = data == 1 ? (unsigned)(b[18] | b[19] << 8) : (unsigned)(b[18] << 8 | b[19]);
    bool is64 = cls == 2, le = data == 1;
    switch (m) {
    case 3: /* EM_386 */
        return "i386";
    case 62: /* EM_X86_64; ELFCLASS32 is the x32 ABI */
        return is64 ? "x86_64" : "x32";
    case 183: /* EM_AARCH64 */
        return is64 ? "aarch64" : "aarch64_ilp32";
    case 40: /* EM_ARM */
        return "arm";
    case 20: /* EM_PPC */
        return "ppc";
    case 21: /* EM_PPC64 */
        return le ? "ppc64le" : "ppc64";
    case 22: /* EM_S390 */
        return is64 ? "s390x" : "s390";
    case 243: /* EM_RISCV */
        return is64 ? "riscv64" : "riscv32";
    case 8: /* EM_MIPS */
        return is64 ? (le ? "mips64el" : "mips64") : (le ? "mipsel" : "mips");
    case 258: /* EM_LOONGARCH */
        return is64 ? "loongarch64" : "loongarch32";
    default:
        return NULL;
    }
}

const char *vd_ins_pe_arch(const unsigned char *b, size_t len)
{
    if (len < 0x40 || b[0] != 'M' || b[1] != 'Z')
        return NULL;
    uint32_t pe = le32(b + 0x3c);
    if (pe > len || len - pe < 6 || memcmp(b + pe, "PE\0\0", 4) != 0)
        return NULL;
    switch (le16(b + pe + 4)) {
    case 0x014c: /* IMAGE_FILE_MACHINE_I386 */
        return "i386";
    case 0x8664: /* IMAGE_FILE_MACHINE_AMD64 */
        return "x86_64";
    case 0xaa64: /* IMAGE_FILE_MACHINE_ARM64 */
        return "aarch64";
    case 0x01c4: /* IMAGE_FILE_MACHINE_ARMNT */
        return "arm";
    default:
        return NULL;
    }
}
