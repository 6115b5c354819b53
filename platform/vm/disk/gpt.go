package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// GPT partition types (UEFI spec; systemd's Discoverable Partitions).
const (
	typeESP    = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootX8 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" // root-x86-64
)

const sector = 512

// assemble writes a raw disk: GPT, the EFI partition from 1 MiB, the root
// after it, 1 MiB at the end for the backup GPT. It returns the disk's size.
func assemble(ctx context.Context, raw, espImg, rootImg string, ids diskIDs) (int64, error) {
	const mib = 1 << 20
	esp, err := os.Stat(espImg)
	if err != nil {
		return 0, fmt.Errorf("disk image: %w", err)
	}
	root, err := os.Stat(rootImg)
	if err != nil {
		return 0, fmt.Errorf("disk image: %w", err)
	}
	espStart := int64(mib)
	rootStart := espStart + (esp.Size()+mib-1)/mib*mib
	end := rootStart + (root.Size()+mib-1)/mib*mib
	total := end + mib

	f, err := os.OpenFile(raw, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("disk image: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(total); err != nil {
		return 0, fmt.Errorf("disk image: %w", err)
	}
	script := fmt.Sprintf(`label: gpt
label-id: %s
unit: sectors
first-lba: 2048
start=%d, size=%d, type=%s, uuid=%s, name="esp"
start=%d, size=%d, type=%s, uuid=%s, name="root"
`, strings.ToUpper(ids.disk),
		espStart/sector, esp.Size()/sector, typeESP, strings.ToUpper(ids.esp),
		rootStart/sector, root.Size()/sector, typeRootX8, strings.ToUpper(ids.root))
	cmd := exec.CommandContext(ctx, toolSfdisk.name, "--no-reread", "--no-tell-kernel", "--quiet", raw)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("disk image: sfdisk: %w: %s", err, bytes.TrimSpace(out))
	}
	for _, p := range []struct {
		img string
		off int64
	}{{espImg, espStart}, {rootImg, rootStart}} {
		if err := copySparse(f, p.img, p.off); err != nil {
			return 0, fmt.Errorf("disk image: %w", err)
		}
	}
	return total, f.Close()
}

// copySparse writes src into dst at off, skipping runs of zeros so the raw
// disk stays sparse (the disk file is fresh, so holes read as zeros).
func copySparse(dst *os.File, src string, off int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
