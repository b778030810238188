package extract

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/thingsync/thingsync/internal/clip"
)

// CallbackStore commits what a callback delivers. It returns an error
// wrapping ErrNotPending for a requestId that is not waiting for a
// callback, and answers only once the delivery is committed.
type CallbackStore interface {
	StoreCallback(ctx context.Context, cb AggregateCallback) error
}

// ErrNotPending: the callback's requestId is not one the store waits for.
var ErrNotPending = errors.New("request is not pending")

// Receiver is the callback listener. ThingSpace echoes the registered
// username and password inside the body: that is the only credential it
// sends, so a delivery is accepted only when both match (compared in
// constant time) and its requestId is pending. Anything else gets a 4xx
// and changes nothing; a failed commit gets a 503 so the vendor re-sends.
type Receiver struct {
	Username, Password string
	Store              CallbackStore
	Log                zerolog.Logger
	// MaxBody caps a delivery's size (default 4 MiB: a 200-device
	// answer is ~60 KB).
	MaxBody int64
	// MaxConcurrent caps the deliveries handled at once, slow ones
	// included (default 16); past it a delivery is answered 503 with
	// Retry-After, and ThingSpace sends it again.
	MaxConcurrent int
	// StoreWait bounds how long a delivery waits for its commit (the
	// warehouse file may be held by a reader); past it, 503 with
	// Retry-After (default 20 s, under the server's write timeout so the
	// answer still reaches the sender).
	StoreWait time.Duration

	once  sync.Once
	slots chan struct{}
}

// retryAfter is the Retry-After of a 503: ThingSpace re-sends on its own
// schedule; this says when trying again makes sense.
const retryAfter = "30"

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := rc.Log.With().Str("remote", r.RemoteAddr).Logger()
	rc.once.Do(func() { rc.slots = make(chan struct{}, cmp.Or(rc.MaxConcurrent, 16)) })
	select {
	case rc.slots <- struct{}{}:
		defer func() { <-rc.slots }()
	default:
		log.Warn().Int("max_concurrent", cap(rc.slots)).Msg("callback refused: too many deliveries at once; ThingSpace will re-send it")
		w.Header().Set("Retry-After", retryAfter)
		writeStatus(w, http.StatusServiceUnavailable, "busy")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, log, http.StatusMethodNotAllowed, "method not allowed", "")
		return
	}
	limit := rc.MaxBody
	if limit <= 0 {
		limit = 4 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuse(w, log, http.StatusRequestEntityTooLarge, "body too large", "")
			return
		}
		refuse(w, log, http.StatusBadRequest, "unreadable body", "")
		return
	}
	var cb AggregateCallback
	if err := json.Unmarshal(body, &cb); err != nil {
		refuse(w, log, http.StatusBadRequest, "body is not a callback", "")
		return
	}
	// Hashing first makes the comparison's time independent of the
	// lengths too.
	userOK := equalSecret(cb.Username, rc.Username)
	passOK := equalSecret(cb.Password, rc.Password)
	if !userOK || !passOK || rc.Username == "" || rc.Password == "" {
		refuse(w, log, http.StatusUnauthorized, "wrong callback credentials", cb.RequestID)
		return
	}
	if strings.TrimSpace(cb.RequestID) == "" {
		refuse(w, log, http.StatusBadRequest, "callback without requestId", "")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), cmp.Or(rc.StoreWait, 20*time.Second))
	defer cancel()
	if err := rc.Store.StoreCallback(ctx, cb); err != nil {
		if errors.Is(err, ErrNotPending) {
			refuse(w, log, http.StatusNotFound, "requestId is not pending", cb.RequestID)
			return
		}
		log.Error().Err(err).Str("request_id", printable(cb.RequestID)).Msg("callback not stored; ThingSpace will re-send it")
		w.Header().Set("Retry-After", retryAfter)
		writeStatus(w, http.StatusServiceUnavailable, "not stored")
		return
	}
	writeStatus(w, http.StatusOK, "ok")
}

func equalSecret(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// refuse answers a 4xx and logs why, never the body's credentials.
func refuse(w http.ResponseWriter, log zerolog.Logger, status int, why, requestID string) {
	ev := log.Warn().Int("status", status)
	if requestID != "" {
		ev = ev.Str("request_id", printable(requestID))
	}
	ev.Msg("callback refused: " + why)
	writeStatus(w, status, why)
}

func writeStatus(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"status": msg})
	_, _ = w.Write(b)
}

// printable shortens text from outside to something safe to log.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, clip.Text(s, 64))
}

// ServerLimits bound what a client of the listener can hold: a connection
// that sends its headers or body slowly, or stays idle, is closed after
// these times, whatever it sends.
type ServerLimits struct {
	ReadHeaderTimeout time.Duration // the request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration // a kept-alive connection between requests
	MaxHeaderBytes    int
}

// DefaultServerLimits are the listener's limits: a callback body (at most
// MaxBody, ~60 KB in practice) arrives in well under ReadTimeout, and the
// write timeout leaves room for a Receiver's StoreWait.
func DefaultServerLimits() ServerLimits {
	return ServerLimits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
}

// NewServer serves h with the limits l (zero fields take the defaults);
// every request's context ends when ctx does.
func NewServer(ctx context.Context, h http.Handler, l ServerLimits) *http.Server {
	d := DefaultServerLimits()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cmp.Or(l.ReadHeaderTimeout, d.ReadHeaderTimeout),
		ReadTimeout:       cmp.Or(l.ReadTimeout, d.ReadTimeout),
		WriteTimeout:      cmp.Or(l.WriteTimeout, d.WriteTimeout),
		IdleTimeout:       cmp.Or(l.IdleTimeout, d.IdleTimeout),
		MaxHeaderBytes:    cmp.Or(l.MaxHeaderBytes, d.MaxHeaderBytes),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}
