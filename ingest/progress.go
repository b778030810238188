package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/extract"
)

// A run holds the warehouse file from start to end, and DuckDB lets no
// other process open it meanwhile, not even to read. So a run also reports
// its advance in a small JSON file beside the warehouse, which status
// reads while the run goes on.

// ProgressPath is the progress file of the warehouse at db.
func ProgressPath(db string) string { return db + ".progress.json" }

// RunProgress is the progress file's content.
type RunProgress struct {
	PID       int       `json:"pid"`
	Host      string    `json:"host"`
	RunID     string    `json:"run_id"`
	Kind      string    `json:"kind"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Phase: started (nothing reported yet), listing (the device list is
	// still being read), fetching, finishing (committing, the aggregate
	// step, recording the outcome).
	Phase            string  `json:"phase"`
	Listing          bool    `json:"listing"`
	DevicesListed    int     `json:"devices_listed"`
	DevicesDone      int     `json:"devices_done"`
	DevicesFailed    int     `json:"devices_failed"`
	Requests         int     `json:"requests"`
	Records          int64   `json:"records"`
	DevicesPerSecond float64 `json:"devices_per_s"`
	// RateLimit is the request rate ceiling the client keeps now, per
	// second (under THINGSYNC_RATE_LIMIT=auto it moves).
	RateLimit float64 `json:"rate_limit"`
}

// Whether the process that wrote a progress file still runs.
const (
	ProcessRunning = "running"
	ProcessGone    = "gone"
	ProcessUnknown = "unknown" // written on another host
)

// ProgressView is a progress file as status shows it.
type ProgressView struct {
	RunProgress
	Process string `json:"process"`
}

// View is p as a reader shows it at now, with whether its process still
// runs.
func (p *RunProgress) View(now time.Time) *ProgressView {
	v := &ProgressView{RunProgress: *p, Process: ProcessUnknown}
	if host, _ := os.Hostname(); host == p.Host {
		v.Process = ProcessGone
		if processAlive(p.PID) {
			v.Process = ProcessRunning
		}
	}
	return v
}

// processAlive tells whether pid names a live process (signal 0 checks
// without sending; EPERM: alive, someone else's).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// LockedAdvice says who holds the warehouse at path, from its progress
// file, and what a reader can do meanwhile: DuckDB lets nobody read a file
// a process writes.
func LockedAdvice(path string, now time.Time) error {
	holder := "another process"
	if p, _ := ReadProgress(ProgressPath(path)); p != nil {
		if v := p.View(now); v.Process != ProcessGone {
			holder = fmt.Sprintf("thingsync %s (pid %d, run %s, started %s, %d of %d devices done)",
				p.Kind, p.PID, p.RunID, p.StartedAt.UTC().Format(time.RFC3339), p.DevicesDone, p.DevicesListed)
		}
	}
	return fmt.Errorf("%s is being written by %s, and DuckDB lets no other process read it meanwhile: "+
		"`thingsync status` shows the run's progress; set THINGSYNC_SNAPSHOT so that runs publish a copy that can be queried at any time, or query again when the run ends",
		path, holder)
}

// ReadProgress reads a progress file; nil when there is none.
func ReadProgress(path string) (*RunProgress, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var p RunProgress
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &p, nil
}

// progressFile keeps a run's progress file: written whole to a temporary
// file and renamed over the old one, so a reader sees one report or the
// next, at most once a second.
type progressFile struct {
	path     string
	log      zerolog.Logger
	now      func() time.Time
	requests func() int
	limit    func() float64
	start    time.Time // wall clock, for the rate

	mu      sync.Mutex
	p       RunProgress
	written time.Time
	failed  bool // a write failed: said once, then quiet

	stop, stopped chan struct{}
}

func startProgressFile(db string, log zerolog.Logger, now func() time.Time, requests func() int, limit func() float64, runID, kind string, started time.Time) *progressFile {
	host, _ := os.Hostname()
	f := &progressFile{path: ProgressPath(db), log: log, now: now, requests: requests, limit: limit, start: time.Now(),
		p: RunProgress{PID: os.Getpid(), Host: host, RunID: runID, Kind: kind, StartedAt: started, Phase: "started", Listing: true}}
	f.mu.Lock()
	f.write()
	f.mu.Unlock()
	// The walk reports when a device is done, which can take minutes
	// (a first sync of a long history): the file is rewritten every
	// second meanwhile, so that requests and updated_at show the run is
	// alive.
	f.stop, f.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
				f.mu.Lock()
				if time.Since(f.written) >= time.Second {
					f.write()
				}
				f.mu.Unlock()
			}
		}
	}()
	return f
}

// update records the walk's advance.
func (f *progressFile) update(p extract.Progress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.p.Listing, f.p.DevicesListed, f.p.DevicesDone, f.p.DevicesFailed, f.p.Records =
		p.Listing, p.DevicesTotal, p.DevicesDone, p.DevicesFailed, p.Records
	f.p.Phase = "fetching"
	if p.Listing {
		f.p.Phase = "listing"
	}
	if time.Since(f.written) >= time.Second {
		f.write()
	}
}

// phase records a new phase at once.
func (f *progressFile) phase(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.p.Phase, f.p.Listing = name, false
	f.write()
}

// remove deletes the file at the end of the run.
func (f *progressFile) remove() {
	close(f.stop)
	<-f.stopped
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.log.Warn().Err(err).Str("file", f.path).Msg("remove the run's progress file")
	}
}

// write replaces the file; f.mu is held.
func (f *progressFile) write() {
	f.written = time.Now()
	f.p.UpdatedAt = f.now()
	f.p.Requests = f.requests()
	f.p.RateLimit = f.limit()
	if el := time.Since(f.start).Seconds(); el > 0 {
		f.p.DevicesPerSecond = float64(f.p.DevicesDone) / el
	}
	if err := writeFileAtomically(f.path, f.p); err != nil && !f.failed {
		f.failed = true
		f.log.Warn().Err(err).Msg("the run's progress file is not written (status shows less while the run goes); the run goes on")
	}
}

func writeFileAtomically(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Readable by whoever may read the warehouse (CreateTemp makes 0600).
	_ = os.Chmod(tmp.Name(), 0o644)
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
