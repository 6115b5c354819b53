package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// probeWorkers bounds how many resources are probed at once: commands and
// HTTP requests wait on timeouts, file checks do not.
const probeWorkers = 8

// Probe runs every check of suite against the machine it runs on and never
// changes that machine (commands in the suite excepted: they are the
// author's). A check that cannot be probed fails with an Error; the run
// goes on. Cancelling ctx fails the checks not yet run.
func Probe(ctx context.Context, suite *Suite) *Report {
	return newSystem().probe(ctx, suite)
}

// valuer returns the probed value of one property of a resource.
type valuer func(property string) (any, error)

// system is the machine being probed: where it keeps its databases, and
// what was already read from them during this run.
type system struct {
	dpkgStatus string
	passwdFile string
	groupFile  string
	proc       string
	systemctl  string
	resolvConf string

	once     sync.Once
	accounts *accounts
	accErr   error

	dpkgOnce sync.Once
	packages map[string][]dpkgPackage
	dpkgErr  error
}

func newSystem() *system {
	return &system{
		dpkgStatus: "/var/lib/dpkg/status",
		passwdFile: "/etc/passwd",
		groupFile:  "/etc/group",
		proc:       "/proc",
		systemctl:  "systemctl",
		resolvConf: "/etc/resolv.conf",
	}
}

func (s *system) probe(ctx context.Context, suite *Suite) *Report {
	rep := &Report{Started: time.Now()}
	per := make([][]Result, len(suite.Resources))
	work := make(chan int)
	var wg sync.WaitGroup
	for range probeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				per[i] = s.resource(ctx, &suite.Resources[i])
			}
		}()
	}
	for i := range suite.Resources {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, rs := range per {
		rep.Results = append(rep.Results, rs...)
	}
	rep.Duration = time.Since(rep.Started)
	rep.summarize()
	return rep
}

func (s *system) valuer(ctx context.Context, r *Resource) valuer {
	switch r.Type {
	case "package":
		return s.packageValues(r)
	case "file":
		return s.fileValues(r)
	case "port":
		return s.portValues(r)
	case "service":
		return s.serviceValues(ctx, r)
	case "user":
		return s.userValues(r)
	case "group":
		return s.groupValues(r)
	case "command":
		return s.commandValues(ctx, r)
	case "http":
		return s.httpValues(ctx, r)
	case "process":
		return s.processValues(r)
	case "kernel-param":
		return s.kernelParamValues(r)
	case "addr":
		return s.addrValues(ctx, r)
	case "dns":
		return s.dnsValues(ctx, r)
	case "interface":
		return s.interfaceValues(r)
	case "mount":
		return s.mountValues(r)
	case "matching":
		// Nothing to probe: the file's own content is matched.
		return func(string) (any, error) { return r.Content, nil }
	}
	return func(string) (any, error) {
		return nil, fmt.Errorf("resource type %q is not supported by this probe", r.Type)
	}
}

func (s *system) resource(ctx context.Context, r *Resource) []Result {
	out := make([]Result, 0, len(r.Checks))
	var get valuer
	for _, c := range r.Checks {
		res := Result{
			Type: r.Type, ID: r.ID, Property: c.Property, Title: r.Title, Meta: r.Meta,
			Source: r.Source, Expected: c.Expect.String(),
		}
		start := time.Now()
		switch {
		case r.Skip:
			res.Outcome = Skip
		case ctx.Err() != nil:
			res.Outcome, res.Error = Fail, "not probed: "+ctx.Err().Error()
		default:
			if get == nil {
				get = s.valuer(ctx, r)
			}
			check(&res, c, get)
		}
		res.Duration = time.Since(start)
		out = append(out, res)
	}
	return out
}

// check probes one property and compares it with the expectation.
func check(res *Result, c Check, get valuer) {
	res.Outcome = Fail
	if c.Expect == nil {
		res.Error = "no expectation"
		return
	}
	found, err := get(c.Property)
	if err != nil {
		res.Error = err.Error()
		return
	}
	res.Found = show(found)
	ok, err := c.Expect.Match(found)
	if err != nil {
		res.Error = err.Error()
		return
	}
	if ok {
		res.Outcome = Pass
		return
	}
	if c.Expect.Op == opPatterns {
		if missing, _ := missingPatterns(c.Expect.Patterns, toString(found)); len(missing) > 0 {
			res.Detail = fmt.Sprintf("patterns not satisfied: %v", missing)
		}
	}
}

// errNotExist is returned for properties of a thing that is not there.
var errNotExist = errors.New("does not exist")
