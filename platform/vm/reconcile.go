package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"golang.org/x/sys/unix"
)

// cacheLock serialises PruneImages against launches choosing a cached
// image: launches hold it shared until their record names the image.
func (p *Platform) cacheLock(how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(p.dataDir, "images.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image cache lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("image cache lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// InstanceStatus is what Reconcile found of one instance.
type InstanceStatus struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Version    string             `json:"version,omitempty"`
	Digest     string             `json:"digest"`
	State      kiln.InstanceState `json:"state"`
	Ports      []kiln.PortForward `json:"ports,omitempty"`
	LaunchedAt time.Time          `json:"launched_at"`
	EndedAt    time.Time          `json:"ended_at,omitzero"`
	Reason     string             `json:"reason,omitempty"`
}

// Reconcile reports every instance in the data directory as after a kiln
// restart (an instance whose supervisor is gone is crashed, and any QEMU it
// left is killed), removes instance directories of launches that never
// wrote a record, and abandoned partial image copies. Destroyed instances
// are not listed.
func (p *Platform) Reconcile(ctx context.Context) ([]InstanceStatus, error) {
	var errs []error
	p.pruneCopies()
	ents, err := os.ReadDir(filepath.Join(p.dataDir, "instances"))
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	var out []InstanceStatus
	for _, e := range ents {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		id := e.Name()
		if !e.IsDir() || validateID("id", id) != nil {
			continue
		}
		dir := p.instanceDir(id)
		rec, live, err := p.load(id)
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			if live, _ := instancedir.Supervised(dir); !live {
				p.log.Warn("removing instance directory without record", "dir", dir)
				if err := p.Destroy(ctx, id); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !live {
			if err := p.settle(id, "its supervisor is gone (killed, or the machine restarted)"); err != nil {
				errs = append(errs, fmt.Errorf("reconcile %s: %w", id, err))
			}
			if r, err := readRecord(dir); err == nil {
				rec = r
			}
		}
		out = append(out, InstanceStatus{
			ID: rec.ID, Name: rec.Name, Version: rec.Version, Digest: rec.Digest,
			State: p.stateOf(ctx, rec, live), Ports: rec.Ports,
			LaunchedAt: rec.LaunchedAt, EndedAt: rec.EndedAt, Reason: rec.Reason,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(errs...)
}

// pruneCopies removes partial image copies older than an hour (a copy in
// progress writes continuously).
func (p *Platform) pruneCopies() {
	dir := filepath.Join(p.dataDir, "images")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") && !strings.HasPrefix(e.Name(), ".boot-") && !strings.HasPrefix(e.Name(), ".files-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			p.log.Warn("removing abandoned image copy", "file", e.Name())
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// PruneImages removes cached disk images no instance's overlay is stacked
// on and for which keep returns false (keep may be nil). It returns the
// digests removed.
func (p *Platform) PruneImages(ctx context.Context, keep func(digest string) bool) ([]string, error) {
	unlock, err := p.cacheLock(unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	inUse := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(p.dataDir, "instances"))
	if err != nil {
		return nil, fmt.Errorf("prune images: %w", err)
	}
	for _, e := range ents {
		if rec, err := readRecord(p.instanceDir(e.Name())); err == nil {
			inUse[rec.Base] = true
		}
	}
	dir := filepath.Join(p.dataDir, "images")
	imgs, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("prune images: %w", err)
	}
	var removed []string
	for _, e := range imgs {
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		path := filepath.Join(dir, e.Name())
		digest := "sha256:" + e.Name()
		if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".boot") || strings.HasSuffix(e.Name(), filesSuffix) || inUse[path] || (keep != nil && keep(digest)) {
			continue
		}
		// The kernel and initramfs a direct boot took from it first.
		if err := os.RemoveAll(path + ".boot"); err != nil {
			return removed, fmt.Errorf("prune images: %w", err)
		}
		// The manifest drift took of its root file system.
		if err := os.Remove(path + filesSuffix); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("prune images: %w", err)
		}
		if err := os.Remove(path); err != nil {
			return removed, fmt.Errorf("prune images: %w", err)
		}
		removed = append(removed, digest)
	}
	return removed, nil
}
