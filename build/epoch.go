package build

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// digestEpochBase and digestEpochSpan bound the SOURCE_DATE_EPOCH derived
// from a definition's digest: a day in 2020–2024, the same for the same
// definition wherever it is built.
var (
	digestEpochBase = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	digestEpochSpan = 5 * 365
)

// sourceDateEpoch picks the build's SOURCE_DATE_EPOCH from its inputs, in
// this order: the explicit setting (Options.SourceDateEpoch, `kiln build
// --source-date-epoch` or the SOURCE_DATE_EPOCH environment variable);
// the commit time of the last git commit that touched the image's
// definition file, files or scripts, when the estate is in a git
// checkout; else a day derived from the definition's digest. It returns
// the time and a description recorded in the provenance.
//
// The commit time is that of the image's own inputs, not the estate's
// HEAD: a commit that changes another image leaves this image's epoch,
// and so its step cache, as they were.
func sourceDateEpoch(ctx context.Context, est *definition.Estate, img *definition.Image, setting int64) (time.Time, string) {
	if setting > 0 {
		return time.Unix(setting, 0).UTC(), "setting"
	}
	if est != nil && est.Dir != "" {
		if t, commit, ok := gitInputsTime(ctx, est.Dir, inputPaths(est, img)); ok {
			return t, "git commit " + commit
		}
	}
	return digestEpoch(img.Digest), "definition digest " + img.Digest
}

// digestEpoch maps a "sha256:…" digest to midnight UTC of a day in
// 2020–2024.
func digestEpoch(digest string) time.Time {
	b, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil || len(b) < 8 {
		return digestEpochBase
	}
	day := binary.BigEndian.Uint64(b[:8]) % uint64(digestEpochSpan)
	return digestEpochBase.AddDate(0, 0, int(day))
}

// inputPaths are the image's definition file and the files and scripts
// its steps read, as absolute paths.
func inputPaths(est *definition.Estate, img *definition.Image) []string {
	paths := []string{img.File}
	for _, st := range img.Steps {
		switch st.Kind {
		case definition.StepFile:
			paths = append(paths, st.Path)
		case definition.StepShell:
			paths = append(paths, st.ScriptPaths...)
		}
	}
	out := paths[:0]
	for _, p := range paths {
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(est.Dir, p)
		}
		out = append(out, p)
	}
	return out
}

// gitInputsTime returns the committer time and hash of the last commit
// that touched any of paths, when dir is in a git work tree and one did.
func gitInputsTime(ctx context.Context, dir string, paths []string) (time.Time, string, bool) {
	if len(paths) == 0 {
		return time.Time{}, "", false
	}
	args := append([]string{"-C", dir, "log", "-1", "--format=%ct %H", "--"}, paths...)
	out, err := exec.CommandContext(ctx, "git", args...).Output()
	if err != nil {
		return time.Time{}, "", false
	}
	secs, commit, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, "", false
	}
	return time.Unix(n, 0).UTC(), commit, true
}

// ParseSourceDateEpoch parses a SOURCE_DATE_EPOCH setting (Unix seconds).
func ParseSourceDateEpoch(field, s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, kiln.FieldErrorf(kiln.EINVALID, field, "SOURCE_DATE_EPOCH %q is not a positive number of seconds since 1970 (e.g. %d)", s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	}
	return n, nil
}

func epochString(t time.Time) string { return fmt.Sprint(t.Unix()) }
