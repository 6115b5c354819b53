package kiln

import (
	"time"
)

// Attachment is a write-once document kept with a version: a build log, a
// test report.
type Attachment struct {
	Name      string    `json:"name"`
	MediaType string    `json:"media_type"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	Data      []byte    `json:"-"`
}
