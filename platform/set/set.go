// Package set is the platforms of one machine as one kiln.Platform: a
// launch goes to the driver its LaunchSpec.Platform names (the default
// one when empty), and every later call for an instance (exec, state,
// stop, destroy) to the driver that holds it, as the inventory recorded
// it. Drivers are opened on first use, so a machine without QEMU runs
// local instances and says what is missing only when a VM is asked for.
//
// It knows no driver: cmd/kiln passes each one in with how to open it.
package set

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/kiln-project/kiln"
)

// Driver is one platform of the set: its name (what kiln.Platform.Name
// returns, recorded with each instance) and how to open it.
type Driver struct {
	Name string
	Open func() (kiln.Platform, error)
}

// Instances finds the recorded instance an id names (kiln.Inventory does).
type Instances interface {
	FindInstance(ctx context.Context, idOrName string) (*kiln.Instance, error)
}

// Set routes kiln.Platform calls to the driver that holds the instance.
type Set struct {
	def     string
	order   []string
	drivers map[string]*driver
	inv     Instances

	mu sync.Mutex
	// launched remembers the driver of each instance launched through the
	// set and not yet recorded in the inventory (a launch that failed and
	// is undone, a test stage's instance before it is recorded).
	launched map[string]string
}

type driver struct {
	open  func() (kiln.Platform, error)
	mu    sync.Mutex
	tried bool
	plat  kiln.Platform
	err   error
}

// get opens the driver on first use and returns it, or why it cannot open.
func (d *driver) get() (kiln.Platform, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.tried {
		d.tried = true
		d.plat, d.err = d.open()
	}
	return d.plat, d.err
}

// peek is the driver when it was opened already and works, else nil.
func (d *driver) peek() kiln.Platform {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tried && d.err == nil {
		return d.plat
	}
	return nil
}

var _ kiln.Platform = (*Set)(nil)

// New returns the set of drivers; the first is the default (for launches
// that name none, and instances recorded without a platform). inv finds
// the platform an instance was recorded on; nil routes by what this
// process launched, then the default.
func New(inv Instances, drivers ...Driver) (*Set, error) {
	if len(drivers) == 0 {
		return nil, errors.New("platform set: no drivers")
	}
	s := &Set{def: drivers[0].Name, drivers: map[string]*driver{}, inv: inv, launched: map[string]string{}}
	for _, d := range drivers {
		if _, dup := s.drivers[d.Name]; dup || d.Name == "" || d.Open == nil {
			return nil, fmt.Errorf("platform set: driver %q is unnamed, has no Open, or is given twice", d.Name)
		}
		s.drivers[d.Name] = &driver{open: d.Open}
		s.order = append(s.order, d.Name)
	}
	return s, nil
}

// Name is the default driver's name.
func (s *Set) Name() string { return s.def }

// Names are the drivers' names, the default first.
func (s *Set) Names() []string { return slices.Clone(s.order) }

// Get opens (once) and returns the driver called name; "" is the default.
// An unknown name is EINVALID naming the known ones; a driver that cannot
// open here (QEMU missing…) returns why, every time it is asked for.
func (s *Set) Get(name string) (kiln.Platform, error) {
	if name == "" {
		name = s.def
	}
	d, ok := s.drivers[name]
	if !ok {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "platform", "unknown platform %q; this kiln has %s", name, strings.Join(s.order, ", "))
	}
	p, err := d.get()
	if err != nil {
		return nil, fmt.Errorf("the %s platform cannot run here: %w", name, err)
	}
	return p, nil
}

// Launch boots the instance on the driver spec.Platform names.
func (s *Set) Launch(ctx context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	name := spec.Platform
	if name == "" {
		name = s.def
	}
	p, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.launched[spec.ID] = name
	s.mu.Unlock()
	spec.Platform = name
	return p.Launch(ctx, spec)
}

// For returns the driver that holds instance id: the platform the
// inventory recorded, else the one this process launched it on, else the
// default.
func (s *Set) For(ctx context.Context, id string) (kiln.Platform, error) {
	name, err := s.nameOf(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.Get(name)
}

func (s *Set) nameOf(ctx context.Context, id string) (string, error) {
	s.mu.Lock()
	name, ok := s.launched[id]
	s.mu.Unlock()
	if s.inv != nil {
		inst, err := s.inv.FindInstance(ctx, id)
		switch {
		case err == nil && inst.ID == id && inst.Platform != "":
			if _, known := s.drivers[inst.Platform]; !known {
				return "", kiln.Errorf(kiln.EUNAVAILABLE, "instance %s runs on the %s platform, which this kiln does not drive (it has %s)", id, inst.Platform, strings.Join(s.order, ", "))
			}
			return inst.Platform, nil
		case err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND:
			return "", err
		}
	}
	if ok {
		return name, nil
	}
	return s.def, nil
}

// Exec runs argv in the instance on the driver that holds it.
func (s *Set) Exec(ctx context.Context, id string, argv []string, stdio kiln.ExecIO) (int, error) {
	p, err := s.For(ctx, id)
	if err != nil {
		return -1, err
	}
	return p.Exec(ctx, id, argv, stdio)
}

// State asks the driver that holds the instance.
func (s *Set) State(ctx context.Context, id string) (kiln.InstanceState, error) {
	p, err := s.For(ctx, id)
	if err != nil {
		return "", err
	}
	return p.State(ctx, id)
}

// Stop stops the instance on the driver that holds it.
func (s *Set) Stop(ctx context.Context, id string) error {
	p, err := s.For(ctx, id)
	if err != nil {
		return err
	}
	return p.Stop(ctx, id)
}

// Destroy destroys the instance on the driver that holds it. An instance
// neither recorded nor launched by this process is looked for on the
// default driver and on every driver opened already.
func (s *Set) Destroy(ctx context.Context, id string) error {
	s.mu.Lock()
	_, mine := s.launched[id]
	s.mu.Unlock()
	var recorded bool
	if s.inv != nil && !mine {
		inst, err := s.inv.FindInstance(ctx, id)
		recorded = err == nil && inst.ID == id && inst.Platform != ""
	}
	if mine || recorded {
		p, err := s.For(ctx, id)
		if err != nil {
			return err
		}
		if err := p.Destroy(ctx, id); err != nil {
			return err
		}
		s.forget(id)
		return nil
	}
	var errs []error
	for _, name := range s.order {
		var p kiln.Platform
		if name == s.def {
			var err error
			if p, err = s.Get(name); err != nil {
				errs = append(errs, err)
				continue
			}
		} else if p = s.drivers[name].peek(); p == nil {
			continue
		}
		if err := p.Destroy(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Set) forget(id string) {
	s.mu.Lock()
	delete(s.launched, id)
	s.mu.Unlock()
}
