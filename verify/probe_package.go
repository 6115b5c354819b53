package verify

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// dpkgPackage is one paragraph of dpkg's status database.
type dpkgPackage struct {
	Name    string
	Arch    string
	Version string
	Status  string // "install ok installed"
}

func (p dpkgPackage) installed() bool {
	f := strings.Fields(p.Status)
	return len(f) == 3 && f[2] == "installed"
}

// readDpkgStatus parses dpkg's status database (deb822 paragraphs). Only
// the four fields kiln needs are kept; continuation lines are skipped.
func readDpkgStatus(path string) (map[string][]dpkgPackage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the dpkg database: %w", err)
	}
	defer f.Close()
	out := map[string][]dpkgPackage{}
	var cur dpkgPackage
	flush := func() {
		if cur.Name != "" {
			out[cur.Name] = append(out[cur.Name], cur)
		}
		cur = dpkgPackage{}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Architecture":
			cur.Arch = v
		case "Version":
			cur.Version = v
		case "Status":
			cur.Status = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the dpkg database %s: %w", path, err)
	}
	flush()
	return out, nil
}

func (s *system) dpkg() (map[string][]dpkgPackage, error) {
	s.dpkgOnce.Do(func() { s.packages, s.dpkgErr = readDpkgStatus(s.dpkgStatus) })
	return s.packages, s.dpkgErr
}

// packageValues answers installed and versions from dpkg's database. A
// name may carry an architecture ("libc6:amd64").
func (s *system) packageValues(r *Resource) valuer {
	return func(prop string) (any, error) {
		db, err := s.dpkg()
		if err != nil {
			return nil, err
		}
		name, arch, _ := strings.Cut(r.Target, ":")
		var versions []string
		for _, p := range db[name] {
			if p.installed() && (arch == "" || p.Arch == arch) {
				versions = append(versions, p.Version)
			}
		}
		switch prop {
		case "installed":
			return len(versions) > 0, nil
		case "versions":
			if len(versions) == 0 {
				return nil, fmt.Errorf("package %s is not installed", r.Target)
			}
			return versions, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}
