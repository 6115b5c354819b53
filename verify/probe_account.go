package verify

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// accounts is what /etc/passwd and /etc/group say. Users from LDAP or other
// NSS sources are not seen, as in goss.
type accounts struct {
	users  map[string]account
	groups map[string]account
}

type account struct {
	name    string
	id, gid int // gid: a user's primary group
	home    string
	shell   string
	members []string // a group's supplementary members
}

func (a *accounts) userByID(uid int) (account, bool) {
	for _, u := range a.users {
		if u.id == uid {
			return u, true
		}
	}
	return account{}, false
}

func (a *accounts) groupByID(gid int) (account, bool) {
	for _, g := range a.groups {
		if g.id == gid {
			return g, true
		}
	}
	return account{}, false
}

// groupsOf returns the names of u's primary and supplementary groups, sorted.
func (a *accounts) groupsOf(u account) []string {
	set := map[string]bool{}
	if g, ok := a.groupByID(u.gid); ok {
		set[g.name] = true
	}
	for _, g := range a.groups {
		for _, m := range g.members {
			if m == u.name {
				set[g.name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *system) readAccounts() (*accounts, error) {
	s.once.Do(func() {
		a := &accounts{users: map[string]account{}, groups: map[string]account{}}
		err := readColonFile(s.passwdFile, 7, func(f []string) {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 == nil && err2 == nil {
				a.users[f[0]] = account{name: f[0], id: uid, gid: gid, home: f[5], shell: f[6]}
			}
		})
		if err == nil {
			err = readColonFile(s.groupFile, 4, func(f []string) {
				gid, err := strconv.Atoi(f[2])
				if err != nil {
					return
				}
				g := account{name: f[0], id: gid}
				if f[3] != "" {
					g.members = strings.Split(f[3], ",")
				}
				a.groups[f[0]] = g
			})
		}
		s.accounts, s.accErr = a, err
	})
	return s.accounts, s.accErr
}

// readColonFile calls fn with the fields of each line that has n of them.
func readColonFile(path string, n int, fn func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if fields := strings.Split(line, ":"); len(fields) == n {
			fn(fields)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func (s *system) userValues(r *Resource) valuer {
	return func(prop string) (any, error) {
		acc, err := s.readAccounts()
		if err != nil {
			return nil, err
		}
		u, ok := acc.users[r.Target]
		if prop == "exists" {
			return ok, nil
		}
		if !ok {
			return nil, fmt.Errorf("user %s %w", r.Target, errNotExist)
		}
		switch prop {
		case "uid":
			return u.id, nil
		case "gid":
			return u.gid, nil
		case "home":
			return u.home, nil
		case "shell":
			return u.shell, nil
		case "groups":
			return acc.groupsOf(u), nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

func (s *system) groupValues(r *Resource) valuer {
	return func(prop string) (any, error) {
		acc, err := s.readAccounts()
		if err != nil {
			return nil, err
		}
		g, ok := acc.groups[r.Target]
		if prop == "exists" {
			return ok, nil
		}
		if !ok {
			return nil, fmt.Errorf("group %s %w", r.Target, errNotExist)
		}
		if prop == "gid" {
			return g.id, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}
