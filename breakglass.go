package kiln

import (
	"time"
)

// BreakGlass records one opening of manual access to an instance.
type BreakGlass struct {
	ID         int64     `json:"id"`
	InstanceID string    `json:"instance_id"`
	Actor      string    `json:"actor"`
	Reason     string    `json:"reason"`
	Source     string    `json:"source"`
	At         time.Time `json:"at"`
}
