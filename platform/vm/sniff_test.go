package vm

import (
	"os"
	"path/filepath"
	"testing"
)

// Only disk images boot: a rootfs tarball (what a version built without a
// disk format has) is told apart from qcow2 and raw disks.
func TestSniffFormat(t *testing.T) {
	dir := t.TempDir()
	mbr := make([]byte, 1024)
	mbr[510], mbr[511] = 0x55, 0xaa
	tarball := make([]byte, 1024)
	copy(tarball[257:], "ustar")
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"qcow2": {append([]byte("QFI\xfb"), make([]byte, 600)...), "qcow2"},
		"raw":   {mbr, "raw"},
		"tar":   {tarball, ""},
		"short": {[]byte("QFI"), ""},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := sniffFormat(f); got != c.want {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
		f.Close()
	}
}
