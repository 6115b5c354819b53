package bake

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// LookupOwner resolves "user:group" (names or numbers; the group defaults
// to the user's primary group) with the image's /etc/passwd and
// /etc/group, not the host's.
func LookupOwner(root, owner string) (uid, gid int, err error) {
	if owner == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(owner, ":")
	gid = -1
	if n, err := strconv.Atoi(user); err == nil {
		uid = n
	} else {
		rec, err := lookupDB(root, "etc/passwd", user)
		if err != nil {
			return 0, 0, err
		}
		if rec == nil {
			return 0, 0, fmt.Errorf("user %q does not exist in the image (/etc/passwd); create it in an earlier shell step or use a number", user)
		}
		uid, _ = strconv.Atoi(rec[2])
		gid, _ = strconv.Atoi(rec[3])
	}
	if hasGroup && group != "" {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else {
			rec, err := lookupDB(root, "etc/group", group)
			if err != nil {
				return 0, 0, err
			}
			if rec == nil {
				return 0, 0, fmt.Errorf("group %q does not exist in the image (/etc/group); create it in an earlier shell step or use a number", group)
			}
			gid, _ = strconv.Atoi(rec[2])
		}
	}
	if gid < 0 {
		gid = uid
	}
	return uid, gid, nil
}

// lookupDB finds name's record in the image's file db (etc/passwd or
// etc/group), read with root as "/" so a symlink in the image never makes
// kiln read the host's.
func lookupDB(root, db, name string) ([]string, error) {
	f, err := openInRoot(root, db)
	if err != nil {
		return nil, fmt.Errorf("resolve owner: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rec := strings.Split(sc.Text(), ":")
		if len(rec) >= 4 && rec[0] == name {
			return rec, nil
		}
	}
	return nil, sc.Err()
}

// openInRoot opens name for reading inside the tree root; a symlink that
// leads out of the tree is an error, never followed to the host.
func openInRoot(root, name string) (*os.File, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Open(name)
}
