package bake

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
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
		rec, err := lookupDB(filepath.Join(root, "etc/passwd"), user)
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
			rec, err := lookupDB(filepath.Join(root, "etc/group"), group)
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

func lookupDB(p, name string) ([]string, error) {
	f, err := os.Open(p)
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
