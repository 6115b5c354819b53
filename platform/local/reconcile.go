package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

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
	// Reason says why a stopped or crashed instance ended.
	Reason string `json:"reason,omitempty"`
}

// Reconcile reports the truth about every instance in the data directory,
// as after a kiln restart: an instance whose supervisor is gone is crashed,
// whatever its record said. It also cleans up what a killed kiln, supervisor
// or machine left behind: the processes, mounts and network namespace of
// unsupervised instances, instance directories of launches that never got
// going, and abandoned rootfs unpacks. Destroyed instances are not listed.
func (p *Platform) Reconcile(ctx context.Context) ([]InstanceStatus, error) {
	var errs []error
	p.pruneUnpacks()
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
			// No record: a launch died before writing it.
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
			// Idempotent: kills leftovers, unmounts, removes the netns.
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

// pruneUnpacks removes rootfs and layer unpacks whose kiln process is gone.
func (p *Platform) pruneUnpacks() {
	p.pruneUnpacksIn(filepath.Join(p.dataDir, "rootfs"))
	p.pruneUnpacksIn(filepath.Join(p.dataDir, "layers"))
}

func (p *Platform) pruneUnpacksIn(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		f := strings.Split(e.Name(), "-")
		if !strings.HasPrefix(e.Name(), ".tmp-") || len(f) < 4 {
			continue
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + f[2]); err == nil && pid != os.Getpid() {
			continue // still unpacking in another process
		}
		if pid == os.Getpid() {
			continue
		}
		p.log.Warn("removing abandoned rootfs unpack", "dir", e.Name())
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
