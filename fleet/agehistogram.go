package fleet

import (
	"time"

	"github.com/kiln-project/kiln"
)

// AgeBin counts the instances whose version was built more than From and
// at most To before now (the first bin includes age 0).
type AgeBin struct {
	From, To  time.Duration
	Instances int
}

// maxAgeBins bounds a histogram's bins.
const maxAgeBins = 40

// AgeHistogram bins the instances of us by the age of their version at
// now. With a limit, the bins are a sixth of it wide (wider, by a divisor
// of six, on a fleet far older than its limit), so the limit falls on a bin
// edge and the bins past it hold exactly the instances BuildOverage counts
// past it; without, a round number of days. The bins run from 0 past the
// oldest version and past the limit. Instances on versions of unknown
// build time are counted apart.
func AgeHistogram(us []*kiln.Usage, now time.Time, limit time.Duration) (bins []AgeBin, unknown int) {
	var oldest time.Duration
	for _, u := range us {
		if u.BuiltAt.IsZero() {
			continue
		}
		oldest = max(oldest, now.Sub(u.BuiltAt))
	}
	width := ageBinWidth(oldest, limit)
	n := max(1, int((max(oldest, limit)+width-1)/width))
	if limit > 0 && time.Duration(n)*width <= limit {
		n++ // one bin past the limit, so the line is not the chart's edge
	}
	bins = make([]AgeBin, n)
	for i := range bins {
		bins[i] = AgeBin{From: time.Duration(i) * width, To: time.Duration(i+1) * width}
	}
	for _, u := range us {
		if u.BuiltAt.IsZero() {
			unknown += u.Instances
			continue
		}
		age := max(now.Sub(u.BuiltAt), 0)
		i := 0
		if age > 0 {
			i = int((age - 1) / width) // age in (i·w, (i+1)·w]
		}
		bins[min(i, n-1)].Instances += u.Instances
	}
	return bins, unknown
}

// roundDays are the widths of bins without a limit.
var roundDays = []int{1, 2, 5, 7, 14, 30, 60, 90, 180, 365, 730}

func ageBinWidth(oldest, limit time.Duration) time.Duration {
	day := 24 * time.Hour
	if limit > 0 {
		w := limit / 6
		for _, k := range []time.Duration{1, 2, 3, 6} {
			if max(oldest, limit)/(w*k) < maxAgeBins {
				return w * k
			}
		}
		w *= 6 // the limit is one bin; more bins of it until they fit
		for max(oldest, limit)/w >= maxAgeBins {
			w *= 2
		}
		return w
	}
	for _, d := range roundDays {
		if oldest/(time.Duration(d)*day) < maxAgeBins/2 {
			return time.Duration(d) * day
		}
	}
	return time.Duration(roundDays[len(roundDays)-1]) * day * time.Duration(1+int(oldest/(maxAgeBins*365*day)))
}
