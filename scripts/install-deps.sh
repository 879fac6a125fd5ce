#!/usr/bin/env bash
# Installs every Debian package that vdiskfs builds, tests and benchmarks with.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
PKGS=(
  # build (gcc and clang: scripts/build-matrix.sh builds with both; dpkg-dev
  # for dpkg-buildflags, the flags a Debian package is built with)
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev dpkg-dev
  libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev zlib1g-dev libdeflate-dev
  libblkid-dev libmount-dev libext2fs-dev libxml2-dev libhivex-dev ntfs-3g-dev
  # tests: independent oracles and guest-filesystem builders
  qemu-utils libvmdk-utils libvhdi-utils fdisk e2fsprogs dosfstools ntfs-3g
  libxml2-utils xz-utils gzip tar python3 util-linux
  # tests: VMware's ova-compose (t-ova-compose, t-ova-vm) and the OVF comparisons
  python3-yaml python3-lxml
  # tests: independent registry readers for fixup on Windows (hivexget, hivexregedit)
  libhivex-bin libwin-hivex-perl
  # bench
  hyperfine time curl bc
  # tests: strace shows the export sync order (t-export-durability)
  strace
  # tests: a btrfs qgroup gives EDQUOT (t-overlay-edquot; this kernel has no other quota)
  btrfs-progs
  # tests: the fixup boot oracle (t-fixup-boot) builds and boots a guest
  debootstrap qemu-system-x86
  # tests: LVM test disks (pvcreate --restorefile, vgcfgrestore) and the two
  # independent readers of their mapping (lvs, vslvminfo); t-lvm*
  lvm2 libvslvm-utils
  # the Debian package (debian/; t-deb builds, lints and installs it) and
  # the bash completion (bash-completion's pkg-config file names where it
  # goes; t-completion loads its library)
  debhelper lintian bash-completion
  # getfattr, which README and docs use to read an export's status
  attr
  # guest filesystems and initramfs listing (src/fs/): libarchive decompresses
  # initramfs archives, libfsxfs reads XFS through a libbfio callback handle;
  # tests build XFS/FAT/NTFS images and initramfs archives with the real tools
  libarchive-dev libfsxfs-dev libbfio-dev xfsprogs mtools cpio lz4 zstd bzip2
  # tests: guest layouts for inspect/preflight (tests/integration/guests.sh:
  # GRUB's BIOS boot.img, an ESP's grubx64.efi via mtools, XFS on LVM) and
  # virt-inspector as the oracle of vdisk inspect (t-inspect-virt)
  grub-pc-bin grub-efi-amd64-bin guestfs-tools
  # the nbdkit plugin (nbdkit/vdisk.c) and its oracles: nbdcopy, nbdinfo and
  # nbdsh (libnbd) as NBD clients, qemu's nbd driver for the boot test
  nbdkit nbdkit-plugin-dev libnbd-bin python3-libnbd
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# s3rver needs Node.js and npm; the machine image may ship its own build
# (nodesource), whose npm is bundled, so only ask Debian when none is there.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
