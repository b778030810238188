//go:build proflocal

package load

import (
	"fmt"
	"os"
	"sync"
	"time"
)

var phaseMu sync.Mutex
var phases = map[string]time.Duration{}

func phase(name string, start time.Time) {
	phaseMu.Lock()
	phases[name] += time.Since(start)
	phaseMu.Unlock()
}

func PhaseDump() {
	phaseMu.Lock()
	defer phaseMu.Unlock()
	for k, v := range phases {
		fmt.Fprintf(os.Stderr, "phase %-20s %v\n", k, v)
	}
}
