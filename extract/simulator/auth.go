package simulator

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// auth holds bearer tokens and sessions. Every request reads them; only
// token requests, logins and expiries write, so a read-write lock keeps the
// hot path uncontended and a session's last use is an atomic.
type auth struct {
	mu          sync.RWMutex
	token       string    // the current bearer token
	tokenIssued time.Time // by the simulator's clock
	tokens      map[string]time.Time
	sessions    map[string]*sessionState
	badLogins   int // consecutive failed logins
}

type sessionState struct {
	lastUse atomic.Int64 // unix nanoseconds, the simulator's clock
}

func (a *auth) init() {
	a.tokens = map[string]time.Time{}
	a.sessions = map[string]*sessionState{}
}

// ExpireBearerTokens invalidates every bearer token issued so far: the next
// requests get the gateway's 401 fault 900901.
func (s *Simulator) ExpireBearerTokens() {
	s.auth.mu.Lock()
	s.auth.tokens = map[string]time.Time{}
	s.auth.token = ""
	s.auth.mu.Unlock()
}

// ExpireSessions expires every session: the next request with one gets
// REQUEST_FAILED.SessionToken.Expired and the session is dropped.
func (s *Simulator) ExpireSessions() {
	s.auth.mu.RLock()
	for _, st := range s.auth.sessions {
		st.lastUse.Store(0)
	}
	s.auth.mu.RUnlock()
}

// newToken returns a GUID-shaped token, deterministic for a seed and the
// order of issue.
func (s *Simulator) newToken() string {
	n := s.seq.Add(1)
	h1, h2 := mix(uint64(s.opts.Seed), n, 11), mix(uint64(s.opts.Seed), n, 12)
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(h1), uint16(h1>>32), uint16(h1>>48), uint16(h2), h2>>16&0xffffffffffff)
}

func (s *Simulator) tokenLife() time.Duration {
	if f := s.currentFaults(); f.BearerTTL > 0 {
		return f.BearerTTL
	}
	return tokenLife
}

type tokenJSON struct {
	AccessToken string `json:"access_token"`
	Scope       string `json:"scope"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *Simulator) serveToken(w http.ResponseWriter, r *http.Request) {
	s.ctr.tokenRequests.Add(1)
	user, pass, ok := r.BasicAuth()
	if !ok {
		writeFault(w, 900902, "Missing Credentials", "Required OAuth credentials not provided. Make sure your API invocation call has a header: 'Authorization : Basic ...'")
		return
	}
	if !equal(user, s.opts.ClientID) || !equal(pass, s.opts.ClientSecret) {
		writeFault(w, 900901, "Invalid Credentials", "Invalid Credentials. Make sure you have given the correct access token")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"})
		return
	}
	now, life := s.Now(), s.tokenLife()
	a := &s.auth
	a.mu.Lock()
	// Asked again inside its hour, the API returns the same token.
	if a.token == "" || now.Sub(a.tokenIssued) >= life {
		for t, at := range a.tokens {
			if now.Sub(at) >= life {
				delete(a.tokens, t)
			}
		}
		a.token, a.tokenIssued = s.newToken(), now
		a.tokens[a.token] = now
	}
	tok, left := a.token, life-now.Sub(a.tokenIssued)
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, tokenJSON{AccessToken: tok, Scope: "am_application_scope default", TokenType: "Bearer", ExpiresIn: int(left / time.Second)})
}

func (s *Simulator) checkBearer(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		writeFault(w, 900902, "Missing Credentials", "Required OAuth credentials not provided. Make sure your API invocation call has a header: 'Authorization : Bearer ACCESS_TOKEN'")
		return false
	}
	s.auth.mu.RLock()
	issued, ok := s.auth.tokens[tok]
	s.auth.mu.RUnlock()
	if !ok || s.Now().Sub(issued) >= s.tokenLife() {
		writeFault(w, 900901, "Invalid Credentials", "Access failure for API: /api/m2m/v1, version: v1. Make sure you have given the correct access token")
		return false
	}
	return true
}

func (s *Simulator) serveLogin(w http.ResponseWriter, r *http.Request) {
	s.ctr.logins.Add(1)
	if r.Method != http.MethodPost {
		s.ctr.failedLogins.Add(1)
		writeError(w, http.StatusMethodNotAllowed, "INPUT_INVALID.RequestUndefined", "method not allowed")
		return
	}
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if !decodeBody(r, &body) {
		// [choice] A malformed body is not a wrong password: it does not
		// count towards the lock-out.
		s.ctr.failedLogins.Add(1)
		badBody(w)
		return
	}
	f := s.currentFaults()
	a := &s.auth
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.badLogins >= lockAfter {
		s.ctr.failedLogins.Add(1)
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.UserLocked", "The user is locked after too many failed logins; contact ThingSpace support to unlock it")
		return
	}
	if f.RejectLogin || !equal(body.Username, s.opts.Username) || !equal(body.Password, s.opts.Password) {
		a.badLogins++
		s.ctr.failedLogins.Add(1)
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.UserCredentials.Invalid", "The username or password is not valid")
		return
	}
	a.badLogins = 0
	now := s.Now()
	// Sessions nobody used for their idle time are gone anyway: forget them
	// so that a long benchmark's logins do not pile up.
	for t, st := range a.sessions {
		if now.Sub(time.Unix(0, st.lastUse.Load())) >= sessionIdle {
			delete(a.sessions, t)
		}
	}
	tok := s.newToken()
	st := &sessionState{}
	st.lastUse.Store(now.UnixNano())
	a.sessions[tok] = st
	writeJSON(w, http.StatusOK, map[string]string{"sessionToken": tok})
}

// checkSession validates the VZ-M2M-Token: unknown → Invalid, idle for 20
// minutes by the clock → Expired (and dropped), and the SessionExpiryEvery
// fault. A valid session's idle time restarts.
func (s *Simulator) checkSession(w http.ResponseWriter, r *http.Request, f *faultSet) bool {
	tok := r.Header.Get("VZ-M2M-Token")
	a := &s.auth
	a.mu.RLock()
	st := a.sessions[tok]
	a.mu.RUnlock()
	if tok == "" || st == nil {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.SessionToken.Invalid", "The session token is not valid")
		return false
	}
	now := s.Now()
	expired := now.Sub(time.Unix(0, st.lastUse.Load())) >= sessionIdle
	if n := f.SessionExpiryEvery; !expired && n > 0 && s.authReq.Add(1)%uint64(n) == 0 {
		expired = true
	}
	if expired {
		a.mu.Lock()
		delete(a.sessions, tok)
		a.mu.Unlock()
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.SessionToken.Expired", "The session token has expired")
		return false
	}
	st.lastUse.Store(now.UnixNano())
	return true
}

func (s *Simulator) serveLogout(w http.ResponseWriter, r *http.Request) {
	s.ctr.logouts.Add(1)
	s.auth.mu.Lock()
	delete(s.auth.sessions, r.Header.Get("VZ-M2M-Token"))
	s.auth.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"sessionToken": r.Header.Get("VZ-M2M-Token")})
}
