package kiln

import (
	"regexp"
	"time"
)

// Image is an image line: a named kind of server image (basic-linux,
// appserver, container-node) with its own version history.
type Image struct {
	ID          int64     `json:"-"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// LatestNumber is the highest version number recorded, 0 when none.
	LatestNumber int `json:"latest_number"`
}

var imageNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ValidateImageName checks an image line's name: 1–63 characters, lowercase
// letters, digits and dashes, starting with a letter, not ending with a dash
// and without "--". Version names are "<image>-<n>", split at the last dash.
func ValidateImageName(name string) error {
	if name == "" {
		return FieldErrorf(EINVALID, "name", "image name is empty; use lowercase letters, digits and dashes, e.g. appserver")
	}
	if !imageNameRE.MatchString(name) || name[len(name)-1] == '-' || containsDoubleDash(name) {
		return FieldErrorf(EINVALID, "name", "image name %q is not allowed; use 1–63 lowercase letters, digits and single dashes, starting with a letter (e.g. basic-linux)", name)
	}
	return nil
}

func containsDoubleDash(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '-' && s[i+1] == '-' {
			return true
		}
	}
	return false
}
