package disk

import (
	"io/fs"
	"os/exec"
	"strings"
	"syscall"

	"github.com/kiln-project/kiln"
)

// tool is a host program and the Debian package that ships it.
type tool struct{ name, pkg string }

var (
	toolMkfsExt4 = tool{"mkfs.ext4", "e2fsprogs"}
	toolDebugfs  = tool{"debugfs", "e2fsprogs"}
	toolDumpe2fs = tool{"dumpe2fs", "e2fsprogs"}
	toolE2fsck   = tool{"e2fsck", "e2fsprogs"}
	toolSfdisk   = tool{"sfdisk", "fdisk"}
	toolMkfsVfat = tool{"mkfs.vfat", "dosfstools"}
	toolMmd      = tool{"mmd", "mtools"}
	toolMcopy    = tool{"mcopy", "mtools"}
	toolQemuImg  = tool{"qemu-img", "qemu-utils"}
	toolTar      = tool{"tar", "tar"}
)

// lookTools fails naming every missing tool and the packages to install.
func lookTools(ts ...tool) error {
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, t := range ts {
		if _, err := exec.LookPath(t.name); err != nil {
			missing = append(missing, t.name)
			if !seen[t.pkg] {
				seen[t.pkg] = true
				pkgs = append(pkgs, t.pkg)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return kiln.Errorf(kiln.EUNAVAILABLE, "building a disk image needs %s, not found on PATH; install: apt-get install %s",
		strings.Join(missing, ", "), strings.Join(pkgs, " "))
}

func inodeOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
