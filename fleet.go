package kiln

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Usage is how many instances run one image version in one environment:
// the aggregate every fleet report is computed from. The store counts in
// SQL; reports never load instances one by one.
type Usage struct {
	Image       string `json:"image"`
	Number      int    `json:"number"`
	Environment string `json:"environment"`
	// Known is false when the registry has no such version (an instance
	// registered with allow-unknown, or checked in from an image built
	// elsewhere); Status and BuiltAt are then empty.
	Known   bool      `json:"known"`
	Status  Status    `json:"status,omitempty"`
	BuiltAt time.Time `json:"built_at,omitzero"`
	// LatestReady is the number of the image's newest ready version, 0 when
	// it has none.
	LatestReady int `json:"latest_ready,omitempty"`
	// Instances counts instances in any state but destroyed, Lost included.
	Instances int `json:"instances"`
	Lost      int `json:"lost,omitempty"`
}

// Ref returns the version the usage is of.
func (u *Usage) Ref() VersionRef { return VersionRef{Image: u.Image, Number: u.Number} }

// UsageFilter selects usage rows. Zero fields do not filter.
type UsageFilter struct {
	Environment string
	Image       string
}

// AgePolicy is an environment's age limit: no instance there may run an
// image version built longer than MaxAge ago.
type AgePolicy struct {
	Environment string    `json:"environment"`
	MaxAge      Age       `json:"max_age_seconds"`
	UpdatedAt   time.Time `json:"updated_at"`
	UpdatedBy   string    `json:"updated_by,omitempty"`
}

// RegisterOptions change how instances are registered.
type RegisterOptions struct {
	// AllowUnknown keeps instances whose image or version the registry does
	// not know; reports flag them. Without it such an instance is ENOTFOUND.
	AllowUnknown bool
	// Where names where each instance came from ("hosts.csv:7"), for
	// errors; instances[i] when empty.
	Where []string
}

// Checkin is what a server's agent reports about itself: its id, what its
// /etc/kiln-release says, where it runs.
type Checkin struct {
	InstanceID  string            `json:"instance_id"`
	Hostname    string            `json:"hostname,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Address     string            `json:"address,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Release holds the key=value lines of /etc/kiln-release; image and
	// version are required.
	Release map[string]string `json:"release"`
}

// Version returns the image version the release file names.
func (c *Checkin) Version() (VersionRef, error) {
	img := c.Release["image"]
	if err := ValidateImageName(img); err != nil {
		return VersionRef{}, FieldErrorf(EINVALID, "release.image", "release file names image %q, which is not a valid image name; is /etc/kiln-release from a kiln build?", img)
	}
	n, err := strconv.Atoi(c.Release["version"])
	if err != nil || n < 1 {
		return VersionRef{}, FieldErrorf(EINVALID, "release.version", "release file says version %q; want a version number ≥ 1", c.Release["version"])
	}
	return VersionRef{Image: img, Number: n}, nil
}

// Validate checks a check-in before it is recorded.
func (c *Checkin) Validate() error {
	if err := ValidateInstanceID("instance_id", c.InstanceID); err != nil {
		return err
	}
	if _, err := c.Version(); err != nil {
		return err
	}
	for _, f := range [][2]string{{"hostname", c.Hostname}, {"environment", c.Environment}, {"address", c.Address}} {
		if f[1] == "" {
			continue
		}
		if err := validateName(f[0], f[1]); err != nil {
			return err
		}
	}
	return validateLabels("labels", c.Labels)
}

// CheckinResult says what a check-in did.
type CheckinResult struct {
	Instance *Instance `json:"instance"`
	// Created is set when the instance was not known before.
	Created bool `json:"created"`
	// Unknown is set when the registry does not know the version it runs.
	Unknown bool `json:"unknown"`
}

// PackageManifest is one version's relevant installed packages, with what
// tells its Debian release: the origin source of a fresh bake, or the base
// or parent version it was built on.
type PackageManifest struct {
	Version VersionRef `json:"version"`
	Status  Status     `json:"status"`
	// Origin is the ref of its origin source ("bookworm@http://…" for a
	// Debian bake, "basic-linux-2" for a version built on another).
	Origin   string      `json:"origin,omitempty"`
	Base     *VersionRef `json:"base,omitempty"`
	Parent   *VersionRef `json:"parent,omitempty"`
	Packages []Package   `json:"packages"`
}

// Fleet answers questions about the whole estate. Counting happens in the
// store; the fleet package turns usage rows into reports.
//
// Errors: EINVALID for bad input, ENOTFOUND for an unknown image version
// (unless allowed), ECONFLICT for an instance name taken by another id,
// EUNAVAILABLE when the database cannot be reached.
type Fleet interface {
	// Usage returns one row per image version and environment with at
	// least one instance not destroyed, sorted by image, number,
	// environment.
	Usage(ctx context.Context, f UsageFilter) ([]*Usage, error)
	// RegisterInstances records instances in one transaction: all or none.
	// An error about one of them has Field "instances[i]".
	RegisterInstances(ctx context.Context, insts []*Instance, opts RegisterOptions) error
	// CheckIn upserts instances by id in one transaction and sets their
	// last-seen time; a lost instance is running again. Versions unknown to
	// the registry are accepted and flagged.
	CheckIn(ctx context.Context, cs []*Checkin) ([]*CheckinResult, error)
	// MarkLost marks instances not launched by kiln (platform other than
	// "local") that were last seen (or, never seen, launched) before cutoff
	// as lost, and returns how many.
	MarkLost(ctx context.Context, cutoff time.Time) (int, error)
	// Manifests returns every version of every image in number order with
	// the installed packages whose name or source package is in sources.
	Manifests(ctx context.Context, sources []string) ([]*PackageManifest, error)

	SetAgePolicy(ctx context.Context, p *AgePolicy) error
	AgePolicies(ctx context.Context) ([]*AgePolicy, error)
	// DeleteAgePolicy removes an environment's limit; ENOTFOUND when none.
	DeleteAgePolicy(ctx context.Context, env string) error
}

// AdvisoryFilter selects advisories.
type AdvisoryFilter struct {
	Source AdvisorySource
	// FixedIn keeps image-level advisories (those with fixed-in versions).
	FixedIn bool
	// Package keeps advisories naming this source package.
	Package string
	Limit   int
	Offset  int
}

// AdvisoryStore keeps advisories. Put is an idempotent upsert by id: a
// second import of the same file changes nothing.
type AdvisoryStore interface {
	// PutAdvisories records advs in one transaction, replacing advisories
	// with the same id, and returns how many were new.
	PutAdvisories(ctx context.Context, advs []*Advisory) (created int, err error)
	// FindAdvisory returns the whole advisory; ENOTFOUND when unknown.
	FindAdvisory(ctx context.Context, id string) (*Advisory, error)
	// ListAdvisories returns matching advisories sorted by id, without
	// their package lists and details, and the number of all matches.
	ListAdvisories(ctx context.Context, f AdvisoryFilter) ([]*Advisory, int, error)
	DeleteAdvisory(ctx context.Context, id string) error
}

// ReportRow is one image version in use.
type ReportRow struct {
	Image   string    `json:"image"`
	Number  int       `json:"number"`
	Name    string    `json:"name"`
	BuiltAt time.Time `json:"built_at,omitzero"`
	Status  Status    `json:"status,omitempty"`
	// Unknown is set when the registry has no such version.
	Unknown   bool `json:"unknown,omitempty"`
	Instances int  `json:"instances"`
	Lost      int  `json:"lost,omitempty"`
	// OverAge counts the instances that break their environment's age
	// policy.
	OverAge int `json:"over_age,omitempty"`
}

// Report is the fleet report: which versions are in use and by how many.
type Report struct {
	Environment string       `json:"environment,omitempty"`
	Rows        []*ReportRow `json:"rows"`
	Versions    int          `json:"versions"`
	Instances   int          `json:"instances"`
	Unknown     int          `json:"unknown_instances"`
	OverAge     int          `json:"over_age_instances"`
	Policies    []*AgePolicy `json:"policies,omitempty"`
}

// ExposureRow is one exposed image version.
type ExposureRow struct {
	ReportRow
	// FixedIn is the first version of the image without the problem;
	// empty when no version has the fix yet.
	FixedIn string `json:"fixed_in,omitempty"`
	// Findings say which installed packages are affected and why
	// (package-level advisories only).
	Findings []string `json:"findings,omitempty"`
}

// Exposure lists the instances that must be rebuilt for an advisory or a
// fixed-in statement.
type Exposure struct {
	Advisory    string         `json:"advisory,omitempty"`
	Environment string         `json:"environment,omitempty"`
	FixedIn     []VersionRef   `json:"fixed_in"`
	Rows        []*ExposureRow `json:"rows"`
	Versions    int            `json:"versions"`
	Instances   int            `json:"instances"`
	// Notes say what could not be decided (a version whose Debian release
	// is unknown, an image with no fix yet).
	Notes []string `json:"notes,omitempty"`
}

// OverageRow is one image version in one environment built too long ago.
type OverageRow struct {
	ReportRow
	Environment string `json:"environment"`
	MaxAge      Age    `json:"max_age_seconds"`
	// Over is how far past the limit the version is.
	Over Age `json:"over_seconds"`
}

// Overage lists instances that break an age limit.
type Overage struct {
	Environment string        `json:"environment,omitempty"`
	MaxAge      Age           `json:"max_age_seconds,omitempty"`
	Rows        []*OverageRow `json:"rows"`
	Versions    int           `json:"versions"`
	Instances   int           `json:"instances"`
}

// StaleRow is one image version in use that is older than its image's
// latest ready version.
type StaleRow struct {
	ReportRow
	// Latest is the version the instances should run: the latest ready
	// version, or their environment's channel version (see Against).
	Latest string `json:"latest_ready"`
	// Against says which: "latest ready" or "channel ENV".
	Against string `json:"against"`
	Behind  int    `json:"behind"`
}

// Stale lists instances not on the latest ready version of their image.
type Stale struct {
	Environment string      `json:"environment,omitempty"`
	Rows        []*StaleRow `json:"rows"`
	Versions    int         `json:"versions"`
	Instances   int         `json:"instances"`
}

// Limits on instance fields.
const (
	MaxInstanceID = 128
	MaxLabels     = 64
)

// ValidateInstanceID checks an instance id: 1–128 printable characters
// without spaces (cloud ids, UUIDs, machine names).
func ValidateInstanceID(field, id string) error {
	if id == "" {
		return FieldErrorf(EINVALID, field, "instance id is empty; give the server's id (cloud instance id, machine-id or hostname)")
	}
	if len(id) > MaxInstanceID {
		return FieldErrorf(EINVALID, field, "instance id is %d bytes; the limit is %d", len(id), MaxInstanceID)
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f || r == ',' {
			return FieldErrorf(EINVALID, field, "instance id %q contains a space, comma or control character; use letters, digits and -_.:", id)
		}
	}
	return nil
}

func validateName(field, s string) error {
	if len(s) > 255 {
		return FieldErrorf(EINVALID, field, "%s is %d bytes; the limit is 255", field, len(s))
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return FieldErrorf(EINVALID, field, "%s %q contains a control character", field, s)
		}
	}
	return nil
}

func validateLabels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return FieldErrorf(EINVALID, field, "%d labels given; the limit is %d", len(labels), MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "" || len(k) > 128 || strings.ContainsAny(k, "=,\n\t") {
			return FieldErrorf(EINVALID, field, "label key %q is not allowed; use 1–128 characters without '=', ',' or whitespace control characters", k)
		}
		if len(labels[k]) > 1024 {
			return FieldErrorf(EINVALID, field, "label %s is %d bytes; the limit is 1024", k, len(labels[k]))
		}
	}
	return nil
}

// ValidateInstance checks an instance before it is recorded. field prefixes
// the field names in errors ("instances[3]", "line 7").
func ValidateInstance(field string, inst *Instance) error {
	at := func(f string) string {
		if field == "" {
			return f
		}
		return field + "." + f
	}
	if inst.ID != "" {
		if err := ValidateInstanceID(at("id"), inst.ID); err != nil {
			return err
		}
	}
	if inst.Name != "" {
		if err := validateName(at("name"), inst.Name); err != nil {
			return err
		}
	}
	if err := ValidateImageName(inst.Version.Image); err != nil {
		return FieldErrorf(EINVALID, at("image"), "image %q is not a valid image name", inst.Version.Image)
	}
	if inst.Version.Number < 1 {
		return FieldErrorf(EINVALID, at("version"), "version number %d of %s is not valid; it must be ≥ 1", inst.Version.Number, inst.Version.Image)
	}
	if err := validateName(at("environment"), inst.Environment); err != nil {
		return err
	}
	if err := validateName(at("platform"), inst.Platform); err != nil {
		return err
	}
	if err := validateName(at("address"), inst.Address); err != nil {
		return err
	}
	if inst.State != "" && !inst.State.Valid() {
		return FieldErrorf(EINVALID, at("state"), "unknown instance state %q; use one of %s", inst.State, strings.Join(instanceStateNames(), ", "))
	}
	return validateLabels(at("labels"), inst.Labels)
}

// InstanceStates lists every instance state.
var InstanceStates = []InstanceState{InstanceStarting, InstanceRunning, InstanceDegraded, InstanceStopped, InstanceCrashed, InstanceDestroyed, InstanceLost}

// Valid reports whether s is a known state.
func (s InstanceState) Valid() bool { return slices.Contains(InstanceStates, s) }

func instanceStateNames() []string {
	out := make([]string, len(InstanceStates))
	for i, s := range InstanceStates {
		out[i] = string(s)
	}
	return out
}

// ParseInstanceState parses a state name, with a message listing the valid ones.
func ParseInstanceState(field, s string) (InstanceState, error) {
	st := InstanceState(s)
	if !st.Valid() {
		return "", FieldErrorf(EINVALID, field, "unknown instance state %q; use one of %s", s, strings.Join(instanceStateNames(), ", "))
	}
	return st, nil
}

// Age is a span of time in whole seconds, as age limits are stored and
// shown in JSON.
type Age int64

// AgeOf rounds d down to whole seconds.
func AgeOf(d time.Duration) Age { return Age(d / time.Second) }

// Duration returns a as a time.Duration.
func (a Age) Duration() time.Duration { return time.Duration(a) * time.Second }

func (a Age) String() string { return FormatAge(a.Duration()) }

// ParseMaxAge parses an age limit: a number with unit d (days), w (weeks)
// or h (hours), or any Go duration ("36h30m"). "90d" is 90 × 24 hours.
func ParseMaxAge(field, s string) (Age, error) {
	bad := func() (Age, error) {
		return 0, FieldErrorf(EINVALID, field, "%q is not an age; write a positive number of days, weeks or hours: 90d, 12w, 36h", s)
	}
	if s == "" {
		return bad()
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	var d time.Duration
	if unit != 0 {
		n, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil || n <= 0 || n > 100*365 {
			return bad()
		}
		d = time.Duration(n * float64(unit))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return bad()
		}
	}
	if d < time.Minute {
		return 0, FieldErrorf(EINVALID, field, "age limit %s is under a minute; did you mean %sd?", s, strings.TrimRight(s, "smh"))
	}
	return AgeOf(d), nil
}

// FormatAge writes a duration in days and hours ("92d4h", "5h"), the way
// age limits are written.
func FormatAge(d time.Duration) string {
	if d < 0 {
		return "-" + FormatAge(-d)
	}
	days := int64(d / (24 * time.Hour))
	hours := int64((d % (24 * time.Hour)) / time.Hour)
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case hours > 0:
		return fmt.Sprintf("%dh", hours)
	}
	return fmt.Sprintf("%dm", int64(d/time.Minute))
}
