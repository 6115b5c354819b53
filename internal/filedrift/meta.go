package filedrift

import (
	"io/fs"
	"syscall"
)

// Meta is what drift compares of a path besides its content: type and
// permission bits (setuid, setgid and sticky included) and owner. A path
// whose Meta differs from the image's is changed; times are not compared
// (a copy-up or a rewrite with the same content is no change).
type Meta struct {
	Mode fs.FileMode
	UID  uint32
	GID  uint32
}

// MetaOf is fi's Meta (owner 0:0 when fi carries no stat_t).
func MetaOf(fi fs.FileInfo) Meta {
	m := Meta{Mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		m.UID, m.GID = st.Uid, st.Gid
	}
	return m
}

// ModeOf converts a Unix st_mode (type and permission bits, as stat(2)
// and debugfs print it) to the fs.FileMode os.Lstat reports for it.
func ModeOf(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFREG:
	default:
		mode |= fs.ModeIrregular
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
