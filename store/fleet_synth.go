package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
)

// countBatch is how many counts one INSERT carries (5 parameters each).
const countBatch = 500

// AddSyntheticCounts adds running instances to fleet_counts without
// instance rows: cs[i].Instances instances on cs[i]'s version in its
// environment (Lost and the other fields are ignored). It is for synthetic
// fleets only (fleet.Synthesize with SynthConfig.CountsOnly, the
// benchmarks): the reports, which read fleet_counts (Usage), then count
// instances that ListInstances does not list. One transaction; a count
// already there is added to, as the counting triggers would.
func (db *DB) AddSyntheticCounts(ctx context.Context, cs []*kiln.Usage) error {
	for i, c := range cs {
		if c.Image == "" || c.Number < 1 || c.Instances < 0 {
			return kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("counts[%d]", i), "a count needs an image, a version number ≥ 1 and instances ≥ 0 (got %s in %q: %d)",
				c.Ref(), c.Environment, c.Instances)
		}
	}
	return db.write(ctx, func(tx *tx) error {
		for start := 0; start < len(cs); start += countBatch {
			batch := cs[start:min(start+countBatch, len(cs))]
			var q strings.Builder
			q.WriteString(`INSERT INTO fleet_counts (image, number, environment, state, instances) VALUES `)
			args := make([]any, 0, 5*len(batch))
			for i, c := range batch {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(?, ?, ?, ?, ?)")
				args = append(args, c.Image, c.Number, c.Environment, string(kiln.InstanceRunning), c.Instances)
			}
			q.WriteString(` ON CONFLICT (image, number, environment, state) DO UPDATE SET instances = fleet_counts.instances + excluded.instances`)
			if _, err := tx.exec(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("add synthetic counts: %w", err)
			}
		}
		return nil
	})
}
