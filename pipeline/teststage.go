package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/verify"
)

// Attachment names of the test stage's outputs, kept with the version.
const (
	SuiteAttachment  = "server-tests.json" // the suite a build recorded with the version
	ReportAttachment = "test-report.json"
	JUnitAttachment  = "test-report.junit.xml"
)

// TestEnvironment is the environment recorded for test-stage instances.
const TestEnvironment = "test"

// Tester runs the test stage.
type Tester struct {
	Registry  kiln.Registry
	Artifacts kiln.ArtifactStore
	// Launcher boots the temporary instance, after it checked the
	// version's signed provenance, and records it while it lives.
	Launcher *launch.Launcher
	Logger   *slog.Logger
	// Progress receives one line per stage event; nil prints nothing.
	Progress io.Writer
}

// TestOptions change one test run.
type TestOptions struct {
	// Suite overrides the suite recorded with the version.
	Suite *verify.Suite
	// Keep leaves the instance running after the tests (for debugging);
	// its status still moves.
	Keep bool
	// BootTimeout bounds the instance's boot; 0 uses the platform's default.
	BootTimeout time.Duration
	// Retest allows testing a version that is not a candidate without
	// moving its status (a dry run for tested/ready versions).
	Retest bool
	// Platform is where the instance boots (kiln.LaunchPlatforms); empty
	// is the default (the pipeline's `test { platform = … }`).
	Platform string
}

// TestResult is what the test stage found.
type TestResult struct {
	Version    kiln.VersionRef
	InstanceID string
	Report     *verify.Report
	Passed     bool
	// Status is the version's status after the stage.
	Status  kiln.Status
	Reason  string
	Elapsed time.Duration
}

// Test runs the test stage on a candidate version: it boots a temporary
// instance from the version's artifact (never the build environment; only
// when its signed provenance verifies), runs
// the server tests in it, destroys it (also on failure, timeout and
// cancellation) and moves the version to tested or failed, keeping the
// report with the version. A version that is not a candidate is refused.
func (t *Tester) Test(ctx context.Context, ref kiln.VersionRef, opts TestOptions) (*TestResult, error) {
	start := time.Now()
	log := t.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gate := launch.Candidate(opts.Retest)
	v, err := t.Launcher.Check(ctx, ref, gate)
	if err != nil {
		return nil, err
	}
	suite := opts.Suite
	if suite == nil {
		suite, err = t.recordedSuite(ctx, ref)
		if err != nil {
			return nil, err
		}
	}
	if suite.Count() == 0 {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no server tests; add `tests = [\"tests/%s.yaml\"]` to its image definition or give --tests FILE", ref, ref.Image)
	}
	art, err := t.Launcher.Artifact(v)
	if err != nil {
		return nil, err
	}
	if _, err := t.Artifacts.Stat(ctx, art.Digest); err != nil {
		return nil, fmt.Errorf("artifact of %s: %w", ref, err)
	}

	res := &TestResult{Version: ref, InstanceID: instanceID(ref)}
	on := ""
	if opts.Platform != "" {
		on = " on the " + opts.Platform + " platform"
	}
	t.say("==> %s: launching a temporary instance %s from the final image%s", ref, res.InstanceID, on)
	// From here on, the instance is destroyed whatever happens, with a
	// context that survives the caller's cancellation.
	launched := false
	cleanup := func() {
		if opts.Keep && launched {
			t.say("    %s: instance %s kept (destroy it with `kiln instance destroy %s`)", ref, res.InstanceID, res.InstanceID)
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := t.Launcher.Destroy(dctx, res.InstanceID, "test stage finished"); derr != nil {
			log.Error("destroy test instance", "instance", res.InstanceID, "err", derr)
		}
		t.say("    %s: instance %s destroyed", ref, res.InstanceID)
	}
	defer cleanup()
	l, err := t.Launcher.Launch(ctx, launch.Request{Version: ref, ID: res.InstanceID, Environment: TestEnvironment,
		Timeout: opts.BootTimeout, Gate: gate, Platform: opts.Platform})
	var boot *launch.BootError
	switch {
	case err == nil:
		launched = true
	case ctx.Err() != nil:
		return nil, err
	case errors.As(err, &boot):
		return t.fail(ctx, v, res, opts, start, fmt.Sprintf("instance did not boot: %s", kiln.ErrorMessage(err)), nil)
	default:
		return nil, err
	}
	t.say("    %s: %s; running %d checks", ref, l.Launch.State, suite.Count())
	rep, err := verify.Run(ctx, verify.InstanceExecutor{Platform: t.Launcher.Platform, ID: res.InstanceID}, suite)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return t.fail(ctx, v, res, opts, start, fmt.Sprintf("the test probe failed: %s", kiln.ErrorMessage(err)), nil)
	}
	res.Report = rep
	if !rep.Passed() {
		return t.fail(ctx, v, res, opts, start, fmt.Sprintf("%d of %d checks failed", rep.Summary.Failed, rep.Summary.Count), rep)
	}
	res.Passed = true
	res.Reason = fmt.Sprintf("%d checks passed on instance %s", rep.Summary.Count, res.InstanceID)
	if err := t.record(ctx, ref, rep, opts, kiln.StatusTested, res); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

func (t *Tester) fail(ctx context.Context, v *kiln.Version, res *TestResult, opts TestOptions, start time.Time, reason string, rep *verify.Report) (*TestResult, error) {
	res.Reason = reason
	res.Report = rep
	if err := t.record(ctx, v.Ref(), rep, opts, kiln.StatusFailed, res); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// record keeps the report with the version and moves its status, unless
// this is a retest.
func (t *Tester) record(ctx context.Context, ref kiln.VersionRef, rep *verify.Report, opts TestOptions, to kiln.Status, res *TestResult) error {
	res.Status = to
	if opts.Retest {
		v, err := t.Registry.FindVersion(ctx, ref)
		if err == nil {
			res.Status = v.Status
		}
		return err
	}
	if rep != nil {
		var js, junit bytes.Buffer
		if err := (verify.JSON{}).Write(&js, rep); err != nil {
			return err
		}
		if err := (verify.JUnit{}).Write(&junit, rep); err != nil {
			return err
		}
		for _, a := range []*kiln.Attachment{
			{Name: ReportAttachment, MediaType: "application/json", Data: js.Bytes()},
			{Name: JUnitAttachment, MediaType: "application/xml", Data: junit.Bytes()},
		} {
			if err := t.Registry.AddAttachment(ctx, ref, a); err != nil {
				return fmt.Errorf("keep the test report with %s: %w", ref, err)
			}
		}
	}
	if _, err := t.Registry.SetStatus(ctx, ref, to, "test stage: "+res.Reason); err != nil {
		return fmt.Errorf("mark %s %s: %w", ref, to, err)
	}
	t.say("==> %s: %s (%s)", ref, to, res.Reason)
	return nil
}

// recordedSuite returns the server tests the build kept with the version.
func (t *Tester) recordedSuite(ctx context.Context, ref kiln.VersionRef) (*verify.Suite, error) {
	att, err := t.Registry.Attachment(ctx, ref, SuiteAttachment)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no server tests recorded with it; give --estate DIR (the estate it was built from) or --tests FILE", ref)
	}
	if err != nil {
		return nil, err
	}
	var s verify.Suite
	if err := json.Unmarshal(att.Data, &s); err != nil {
		return nil, fmt.Errorf("server tests recorded with %s: %w", ref, err)
	}
	return &s, nil
}

// RecordSuite keeps an image's server tests with a freshly built version,
// so the test stage runs the tests that belong to that build even after the
// estate has moved on. No test files: nothing is recorded.
func RecordSuite(ctx context.Context, reg kiln.Registry, ref kiln.VersionRef, img *definition.Image) error {
	if len(img.TestPaths) == 0 {
		return nil
	}
	s, err := ImageSuite(img)
	if err != nil {
		return fmt.Errorf("server tests of %s: %w", ref, err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return reg.AddAttachment(ctx, ref, &kiln.Attachment{Name: SuiteAttachment, MediaType: "application/json", Data: data})
}

// ImageSuite parses an image's test files, their templates rendered with
// the image's test_vars.
func ImageSuite(img *definition.Image) (*verify.Suite, error) {
	vars, err := verify.LoadVars(img.TestVarsPaths, "", "test_vars")
	if err != nil {
		return nil, err
	}
	return LoadSuite(img.TestPaths, vars)
}

// LoadSuite parses test files, their templates rendered with vars, and
// merges them into one suite.
func LoadSuite(paths []string, vars verify.Vars) (*verify.Suite, error) {
	all := &verify.Suite{}
	var errs []error
	for _, p := range paths {
		s, err := verify.ParseFileWith(p, verify.ParseOptions{Vars: vars})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all.Files = append(all.Files, s.Files...)
		all.Resources = append(all.Resources, s.Resources...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
}

func (t *Tester) say(format string, args ...any) {
	if t.Progress != nil {
		fmt.Fprintf(t.Progress, format+"\n", args...)
	}
}

// instanceID names a test instance after its version, plus a random suffix
// so two runs never collide.
func instanceID(ref kiln.VersionRef) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("test-%s-%s", ref, hex.EncodeToString(b[:]))
}
