package verify

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// maxContents bounds how much of a file or an output is read for contents,
// stdout, stderr and body.
const maxContents = 64 << 20

// fileValues answers a file resource from lstat: a symlink is reported as
// one (filetype symlink, linked-to), not followed.
func (s *system) fileValues(r *Resource) valuer {
	path := r.Target
	var fi fs.FileInfo
	var statErr error
	stated := false
	stat := func() error {
		if !stated {
			stated = true
			path, statErr = s.expandHome(path)
			if statErr == nil {
				fi, statErr = os.Lstat(path)
			}
		}
		return statErr
	}
	return func(prop string) (any, error) {
		err := stat()
		if prop == "exists" {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return err == nil, err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %w", path, errNotExist)
		}
		if err != nil {
			return nil, err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch prop {
		case "mode":
			return fileMode(fi.Mode()), nil
		case "filetype":
			return fileType(fi.Mode()), nil
		case "size":
			return int(fi.Size()), nil
		case "uid", "gid", "owner", "group":
			if st == nil {
				return nil, fmt.Errorf("no owner information for %s", path)
			}
			return s.fileOwner(prop, int(st.Uid), int(st.Gid))
		case "linked-to":
			if fi.Mode()&fs.ModeSymlink == 0 {
				return nil, fmt.Errorf("%s is not a symlink", path)
			}
			return os.Readlink(path)
		case "contents", "contains":
			return readLimited(path)
		case "md5", "sha256", "sha512":
			return fileHash(path, prop)
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

// fileMode renders permissions the way goss does: four octal digits with
// the setuid, setgid and sticky bits first ("1777" for /tmp).
func fileMode(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "pipe"
	case m&fs.ModeCharDevice != 0:
		return "character-device"
	case m&fs.ModeDevice != 0:
		return "block-device"
	}
	return "unknown"
}

func (s *system) fileOwner(prop string, uid, gid int) (any, error) {
	switch prop {
	case "uid":
		return uid, nil
	case "gid":
		return gid, nil
	}
	acc, err := s.readAccounts()
	if err != nil {
		return nil, err
	}
	if prop == "owner" {
		if u, ok := acc.userByID(uid); ok {
			return u.name, nil
		}
		return strconv.Itoa(uid), nil
	}
	if g, ok := acc.groupByID(gid); ok {
		return g.name, nil
	}
	return strconv.Itoa(gid), nil
}

// expandHome turns "~user/x" into that user's home, as goss does.
func (s *system) expandHome(path string) (string, error) {
	if !strings.HasPrefix(path, "~") {
		return path, nil
	}
	name, rest, _ := strings.Cut(path[1:], "/")
	acc, err := s.readAccounts()
	if err != nil {
		return "", err
	}
	u, ok := acc.users[name]
	if !ok {
		return "", fmt.Errorf("%s: no user %q to expand ~ to", path, name)
	}
	if rest == "" {
		return u.home, nil
	}
	return u.home + "/" + rest, nil
}

func readLimited(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxContents+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxContents {
		return "", fmt.Errorf("%s is larger than %d bytes; check it with a command instead", path, maxContents)
	}
	return string(b), nil
}

func fileHash(path, algo string) (string, error) {
	var h hash.Hash
	switch algo {
	case "md5":
		h = md5.New()
	case "sha256":
		h = sha256.New()
	default:
		h = sha512.New()
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
