package disk

import (
	"slices"
	"testing"
)

// The superblock's "Free inodes:" line is a count, not a list: reading it
// as one left that inode's extraction times in the image, so two disks
// of one tarball differed.
func TestParseUsedInodes(t *testing.T) {
	out := []byte(`Inode count:              40
Free inodes:              14
First inode:              11
Inodes per group:         20

Group 0: (Blocks 0-32767) csum 0xc6d5
  Free inodes: 18-20
Group 1: (Blocks 32768-65535)
  Free inodes: 
Group 2: (Blocks 65536-98303)
  Free inodes: 30, 35-40
`)
	got, err := parseUsedInodes(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{2, 11, 12, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26, 27, 28, 29, 31, 32, 33, 34}
	if !slices.Equal(got, want) {
		t.Errorf("used inodes = %v, want %v", got, want)
	}
}
