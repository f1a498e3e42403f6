#!/usr/bin/env python3
# Write an md v1.0 superblock (as mdadm --metadata=1.0 leaves at the end of
# a member disk) into the image/device given, keeping the rest intact.
#   mk-md10.py IMAGE_OR_DEVICE
import os, struct, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDWR)
size = os.lseek(fd, 0, os.SEEK_END)
sectors = size // 512
sb_sector = (sectors - 16) & ~7          # v1.0: 8K from the end, 4K aligned
sb = bytearray(256 + 2 * 4)              # max_dev = 4 roles (u16)
struct.pack_into('<IIII', sb, 0, 0xa92b4efc, 1, 0, 0)
sb[16:32] = bytes(range(1, 17))          # set uuid
sb[32:40] = b'oldraid\0'
struct.pack_into('<I', sb, 72, 1)        # level 1
struct.pack_into('<Q', sb, 80, sb_sector - 8)
struct.pack_into('<I', sb, 92, 2)        # raid_disks
struct.pack_into('<Q', sb, 128, 0)       # data_offset
struct.pack_into('<Q', sb, 136, sb_sector - 8)
struct.pack_into('<Q', sb, 144, sb_sector)  # super_offset
struct.pack_into('<I', sb, 160, 0)
sb[168:184] = bytes(range(17, 33))
struct.pack_into('<Q', sb, 200, 42)      # events
struct.pack_into('<Q', sb, 208, 0xffffffffffffffff)
struct.pack_into('<I', sb, 220, 4)       # max_dev
struct.pack_into('<HHHH', sb, 256, 0, 1, 0xffff, 0xffff)
csum = 0
for i in range(0, len(sb), 4):
    csum += struct.unpack_from('<I', sb, i)[0]
csum = (csum & 0xffffffff) + (csum >> 32)
struct.pack_into('<I', sb, 216, csum & 0xffffffff)
os.pwrite(fd, bytes(sb), sb_sector * 512)
os.fsync(fd)
os.close(fd)
