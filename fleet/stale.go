package fleet

import (
	"context"

	"github.com/kiln-project/kiln"
)

// Channels says which version each environment should run of each image:
// the version its delivery channel points at. Keyed by image and
// environment.
type Channels map[[2]string]int

// ChannelsOf indexes channels for BuildStaleFor.
func ChannelsOf(cs []*kiln.Channel) Channels {
	out := Channels{}
	for _, c := range cs {
		out[[2]string{c.Image, c.Environment}] = c.Version.Number
	}
	return out
}

// BuildStaleFor lists instances not on the version they should run: where
// their environment has a channel for the image, the channel's version
// (an instance on any other version is stale, even a newer one after a
// channel rollback); elsewhere the image's latest ready version (only
// older versions are stale). Rows are per version and, for channel
// targets, per environment.
func BuildStaleFor(us []*kiln.Usage, env string, ch Channels) *kiln.Stale {
	out := &kiln.Stale{Environment: env, Rows: []*kiln.StaleRow{}}
	type key struct {
		ref    kiln.VersionRef
		target string
	}
	byKey := map[key]*kiln.StaleRow{}
	for _, u := range us {
		target, against := u.LatestReady, "latest ready"
		stale := u.LatestReady > 0 && u.Number < u.LatestReady
		if n, ok := ch[[2]string{u.Image, u.Environment}]; ok {
			target, against = n, "channel "+u.Environment
			stale = u.Number != n
		}
		if !stale {
			continue
		}
		k := key{u.Ref(), against}
		r := byKey[k]
		if r == nil {
			r = &kiln.StaleRow{
				ReportRow: kiln.ReportRow{Image: u.Image, Number: u.Number, Name: u.Ref().String(),
					BuiltAt: u.BuiltAt, Status: u.Status, Unknown: !u.Known},
				Latest:  kiln.VersionRef{Image: u.Image, Number: target}.String(),
				Against: against,
				Behind:  target - u.Number,
			}
			byKey[k] = r
			out.Rows = append(out.Rows, r)
			out.Versions++
		}
		r.Instances += u.Instances
		r.Lost += u.Lost
		out.Instances += u.Instances
	}
	return out
}

// channels reads every channel when the fleet's store keeps them.
func (s *Service) channels(ctx context.Context) (Channels, error) {
	if s.Channels == nil {
		return nil, nil
	}
	cs, err := s.Channels.Channels(ctx, "")
	if err != nil {
		return nil, err
	}
	return ChannelsOf(cs), nil
}
