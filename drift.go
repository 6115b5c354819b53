package kiln

// DriftKind says how a path differs from the image.
type DriftKind string

const (
	DriftAdded    DriftKind = "added"    // not in the image
	DriftChanged  DriftKind = "changed"  // in the image, content or metadata differ
	DriftDeleted  DriftKind = "deleted"  // in the image, removed (an overlay whiteout)
	DriftReplaced DriftKind = "replaced" // a directory of the image replaced as a whole (opaque)
)

// DriftEntry is one changed path or package.
type DriftEntry struct {
	Kind DriftKind `json:"kind"`
	Path string    `json:"path,omitempty"`
	// Package and the versions for a package change; From is empty for an
	// installed package, To for a removed one.
	Package string `json:"package,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// Drift is what an instance changed in itself since it was launched.
type Drift struct {
	InstanceID string       `json:"instance_id"`
	Version    VersionRef   `json:"version"`
	Tainted    bool         `json:"tainted,omitempty"`
	Files      []DriftEntry `json:"files"`
	Packages   []DriftEntry `json:"packages"`
	// Ignored counts changed paths under volatile locations (logs, journal).
	Ignored int `json:"ignored"`
}

// Drifted reports whether anything but volatile paths changed.
func (d *Drift) Drifted() bool { return len(d.Files) > 0 || len(d.Packages) > 0 }
