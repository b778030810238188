package simulator

import (
	"slices"
	"time"
)

// Churn makes the device list change over time: in each period of Every
// (default a day, counted from the Unix epoch), a share of the devices is
// listed with another state, service plan or groups than usual, and a
// share is left out of the list. Which devices, and how, is a pure
// function of (seed, device, period): the same seed and clock list the
// same account, and a device changed in one period may be back to usual
// in the next. Deactivated and suspended devices keep their state (their
// history depends on it); any device may be left out. The zero value
// changes nothing.
type Churn struct {
	// Change is the share of active devices listed changed in a period:
	// a third of them on another service plan, a third suspended, a third
	// with a second group.
	Change float64
	// Leave is the share of devices missing from the list in a period.
	Leave float64
	// Every is the period (default 24 h).
	Every time.Duration
}

// TruthListing is how the device list shows a device at some time.
type TruthListing struct {
	// Listed is false while churn leaves the device out of the list.
	Listed      bool
	State       string
	ServicePlan string
	GroupNames  []string
}

// Listing is how the device list shows device i (0 ≤ i < Options.Devices)
// at clock time at.
func (s *Simulator) Listing(i int, at time.Time) TruthListing {
	d := s.device(i)
	return s.listing(&d, at)
}

func (s *Simulator) listing(d *device, at time.Time) TruthListing {
	l := TruthListing{Listed: true, State: d.state, ServicePlan: servicePlans[d.index%len(servicePlans)],
		GroupNames: []string{"Default: " + s.opts.AccountName}}
	c := s.opts.Churn
	if c.Change <= 0 && c.Leave <= 0 {
		return l
	}
	every := c.Every
	if every <= 0 {
		every = 24 * time.Hour
	}
	period := at.UnixNano() / int64(every)
	if at.UnixNano() < 0 && at.UnixNano()%int64(every) != 0 {
		period--
	}
	h := mix(uint64(s.opts.Seed), uint64(d.index), uint64(period), 31)
	r := float64(h%1_000_000) / 1_000_000
	switch {
	case r < c.Leave:
		l.Listed = false
	case d.state == "active" && r < c.Leave+c.Change:
		switch (h >> 40) % 3 {
		case 0:
			l.ServicePlan = servicePlans[(d.index+1+int(h>>50)%2)%len(servicePlans)]
		case 1:
			l.State = "suspend"
		default:
			// The added group comes first: the API's order is not the
			// groups' meaning.
			l.GroupNames = slices.Insert(l.GroupNames, 0, "Fleet "+string(rune('A'+period%3)))
		}
	}
	return l
}
