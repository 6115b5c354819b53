package kiln

import (
	"context"
	"iter"
	"net/url"
	"time"
)

// AdvisoryFeed is a place kiln fetches advisories from on a schedule
// (`kiln advisory source add`): OSV records (one record, a directory
// listing of *.json, or an ecosystem's all.zip) or the Debian security
// tracker's JSON export. Each sync replaces the advisories the feed brought
// last time, all or nothing; a failed sync keeps them and says why.
type AdvisoryFeed struct {
	Name string `json:"name"`
	// Kind is the format: osv or debian-tracker.
	Kind AdvisorySource `json:"kind"`
	URL  string         `json:"url"`
	// Every is how often kiln serve syncs it.
	Every time.Duration `json:"every"`
	// ETag and LastModified are the validators of the last response that
	// was imported; the next request sends them and a 304 keeps the data.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// LastAttempt is when kiln last tried; LastSuccess when the feed last
	// answered with data that was imported, or with 304 (still current).
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError says why the last attempt failed; empty after a success.
	// The advisories of the last success are kept.
	LastError string `json:"last_error,omitempty"`
	// Advisories is how many advisories the feed holds in kiln.
	Advisories int       `json:"advisories"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	CreatedBy  string    `json:"created_by,omitempty"`
}

// DefaultFeedEvery is a feed's sync interval when none is given.
const DefaultFeedEvery = time.Hour

// Validate checks a feed before it is stored.
func (f *AdvisoryFeed) Validate() error {
	if err := ValidateImageName(f.Name); err != nil {
		return FieldErrorf(EINVALID, "name", "advisory source name %q is not allowed; use 1–63 lowercase letters, digits and single dashes, starting with a letter (e.g. debian-osv)", f.Name)
	}
	switch f.Kind {
	case AdvisoryOSV, AdvisoryDebianTracker:
	default:
		return FieldErrorf(EINVALID, "kind", "unknown advisory source kind %q; use osv or debian-tracker", f.Kind)
	}
	u, err := url.Parse(f.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return FieldErrorf(EINVALID, "url", "%q is not an http(s) URL; give where the feed is served, e.g. https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip", f.URL)
	}
	if f.Every < time.Minute {
		return FieldErrorf(EINVALID, "every", "sync interval %s is shorter than a minute; e.g. --every 1h", f.Every)
	}
	return nil
}

// Due reports whether the feed should be synced at now: never tried, or
// its interval has passed since the last attempt.
func (f *AdvisoryFeed) Due(now time.Time) bool {
	return f.LastAttempt.IsZero() || !now.Before(f.LastAttempt.Add(f.Every))
}

// FeedCheck is the outcome of one sync attempt that imported nothing: the
// feed answered 304 Not Modified (Err empty), or it failed.
type FeedCheck struct {
	Err string
}

// FeedImport is what a successful sync replaced.
type FeedImport struct {
	// Created, Updated, Removed and Unchanged count advisories.
	Created, Updated, Removed, Unchanged int
}

// Held is how many advisories the feed holds after the import.
func (i FeedImport) Held() int { return i.Created + i.Updated + i.Unchanged }

// AdvisoriesOf yields advs in order, for ReplaceFeedAdvisories when they
// are in memory already.
func AdvisoriesOf(advs []*Advisory) iter.Seq2[*Advisory, error] {
	return func(yield func(*Advisory, error) bool) {
		for _, a := range advs {
			if !yield(a, nil) {
				return
			}
		}
	}
}

// AdvisorySourceStore keeps advisory feeds and the advisories each brought.
type AdvisorySourceStore interface {
	CreateAdvisoryFeed(ctx context.Context, f *AdvisoryFeed) error
	// FindAdvisoryFeed returns one feed; ENOTFOUND when unknown.
	FindAdvisoryFeed(ctx context.Context, name string) (*AdvisoryFeed, error)
	ListAdvisoryFeeds(ctx context.Context) ([]*AdvisoryFeed, error)
	// DeleteAdvisoryFeed removes the feed and the advisories it brought,
	// and returns how many advisories went.
	DeleteAdvisoryFeed(ctx context.Context, name string) (int, error)
	// ReplaceFeedAdvisories makes the advisories advs yields the feed's
	// advisories in one transaction (new ones added, changed ones
	// replaced, ones the feed no longer has removed), records etag and
	// lastModified as the feed's validators and the sync as a success.
	// advs is read once, inside the transaction, and written in chunks as
	// it goes, so the store never holds them all; an error it yields, or
	// an invalid or repeated advisory, rolls everything back and leaves the
	// feed's previous advisories.
	ReplaceFeedAdvisories(ctx context.Context, name string, advs iter.Seq2[*Advisory, error], etag, lastModified string) (FeedImport, error)
	// RecordFeedCheck records an attempt that imported nothing: a 304
	// (a success that keeps the data) or a failure (LastError).
	RecordFeedCheck(ctx context.Context, name string, c FeedCheck) error
}
