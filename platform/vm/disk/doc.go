// Package disk turns an image's root filesystem (a tree, or the rootfs
// tarball artifact) into a bootable disk image: raw, or qcow2 for QEMU.
//
// The disk has a GPT with two partitions:
//
//	1  EFI system partition (FAT32): systemd-boot as EFI/BOOT/BOOTX64.EFI,
//	   the image's own kernel and initramfs, one loader entry whose kernel
//	   command line names the root by UUID and puts the console on ttyS0
//	2  root (ext4, GPT type "root-x86-64"): the tree, plus what booting on a
//	   virtual machine needs: fstab by UUID with x-systemd.growfs, a
//	   systemd-repart rule that grows the partition to the disk at first
//	   boot, DHCP on the first Ethernet link (systemd-networkd) when the
//	   image has no network configuration, and the kiln guest agent's unit
//	   (AgentUnit), which answers on a virtio-serial port
//
// Nothing is mounted and no loop device is used: mkfs.ext4 -d fills the
// root from the tree, debugfs adds the files above and fixes the inode
// times the tree's extraction left, mkfs.vfat and mtools fill the EFI
// partition, sfdisk writes the partition table into a plain file, and the
// partition images are copied in at their offsets. qemu-img converts the
// result to qcow2.
//
// The same inputs give the same bytes: UUIDs, the ext4 hash seed and the FAT
// volume id derive from Spec.Seed (the input's digest), and every timestamp
// kiln controls is Spec.SourceDateEpoch.
//
// The package must not modify the tree it is given, mount anything, or need
// tools beyond Debian's e2fsprogs, fdisk, dosfstools, mtools, tar and
// qemu-utils (and systemd-boot-efi when the image carries no boot loader).
package disk
