package kiln

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// System tag keys. kiln maintains them; users cannot set or remove them.
const (
	TagName          = "Name"
	TagVersion       = "Version"
	TagReleaseStatus = "Release_Status"
)

// IsSystemTag reports whether key is maintained by kiln.
func IsSystemTag(key string) bool {
	return key == TagName || key == TagVersion || key == TagReleaseStatus
}

// Tag limits, chosen to fit the cloud registries tags are copied to (EC2
// allows 128-character keys and 256-character values).
const (
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
	MaxTags        = 50
)

var tagKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:/=+@-]*$`)

// ValidateTag checks one free-form tag. Keys: 1–128 characters, a letter
// first, then letters, digits and _ . : / = + @ -. Values: up to 256
// characters of printable UTF-8 (no control characters).
func ValidateTag(field, key, value string) error {
	if key == "" {
		return FieldErrorf(EINVALID, field, "tag key is empty; write tags as KEY=VALUE, e.g. team=payments")
	}
	if len(key) > MaxTagKeyLen {
		return FieldErrorf(EINVALID, field, "tag key %.20q… is %d characters; the limit is %d", key, len(key), MaxTagKeyLen)
	}
	if !tagKeyRE.MatchString(key) {
		return FieldErrorf(EINVALID, field, "tag key %q is not allowed; start with a letter and use letters, digits and _ . : / = + @ -", key)
	}
	if IsSystemTag(key) {
		return FieldErrorf(EINVALID, field, "tag %q is maintained by kiln and cannot be set by hand; use a different key (for status use `kiln version status`)", key)
	}
	if len(value) > MaxTagValueLen {
		return FieldErrorf(EINVALID, field, "value of tag %q is %d bytes; the limit is %d", key, len(value), MaxTagValueLen)
	}
	if !utf8.ValidString(value) {
		return FieldErrorf(EINVALID, field, "value of tag %q is not valid UTF-8", key)
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f {
			return FieldErrorf(EINVALID, field, "value of tag %q contains a control character; use printable text", key)
		}
	}
	return nil
}

// ParseTag parses "KEY=VALUE" as written on the command line.
func ParseTag(field, s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", FieldErrorf(EINVALID, field, "tag %q has no '='; write KEY=VALUE, e.g. team=payments", s)
	}
	if err := ValidateTag(field, k, v); err != nil {
		return "", "", err
	}
	return k, v, nil
}

// Tags maps tag keys to values, system tags included.
type Tags map[string]string

// TagUpdate sets and removes free-form tags on a version.
type TagUpdate struct {
	Set    Tags
	Remove []string
	Reason string
}
