package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingsync/thingsync/extract/simulator"
)

// tokenPath and loginPath are where the API issues bearer tokens and
// sessions.
const (
	tokenPath = "/api/ts/v1/oauth2/token"
	loginPath = "/api/m2m/v1/session/login"
)

// notThingSpace serves the simulator's token endpoint (when sim is set) and
// answers every other path with status and body, as a wrong base URL or a
// proxy does. It counts the logins it refused.
func notThingSpace(t *testing.T, sim http.Handler, status int, contentType, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var logins atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sim != nil && r.URL.Path == tokenPath {
			sim.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == loginPath {
			logins.Add(1)
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &logins
}

const proxyPage = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"

// check and sync say which setting to fix: only the API's own answer to a
// wrong username or password is a rejected login; a 404 or a proxy's HTML
// page names the URL and THINGSPACE_BASE_URL, a refused client secret
// THINGSPACE_CLIENT_ID/SECRET, an unknown account THINGSPACE_ACCOUNT_NAME.
// No secret is ever printed.
func TestAuthErrorsNameTheSetting(t *testing.T) {
	const rejected = "rejected the username or password"
	tests := []struct {
		name string
		// setup changes the world; it returns the URL the message must
		// name, if any.
		setup    func(w *world) string
		want     []string
		wantNot  []string
		rejected bool
	}{
		{"404 everywhere", func(w *world) string {
			srv, _ := notThingSpace(t, nil, http.StatusNotFound, "text/plain; charset=utf-8", "404 page not found\n")
			w.env["THINGSPACE_BASE_URL"] = srv.URL + "/wrong"
			return srv.URL + "/wrong" + tokenPath
		}, []string{"THINGSPACE_BASE_URL", "HTTP 404"}, []string{rejected, "THINGSPACE_CLIENT_SECRET", "THINGSPACE_PASSWORD"}, false},
		{"404 at the login path", func(w *world) string {
			srv, _ := notThingSpace(t, w.sim, http.StatusNotFound, "text/plain; charset=utf-8", "404 page not found\n")
			w.env["THINGSPACE_BASE_URL"] = srv.URL
			return srv.URL + loginPath
		}, []string{"THINGSPACE_BASE_URL", "HTTP 404"}, []string{rejected, "THINGSPACE_PASSWORD"}, false},
		{"proxy error page at the login path", func(w *world) string {
			srv, _ := notThingSpace(t, w.sim, http.StatusBadGateway, "text/html", proxyPage)
			w.env["THINGSPACE_BASE_URL"] = srv.URL
			return srv.URL + loginPath
		}, []string{"THINGSPACE_BASE_URL", "HTTP 502"}, []string{rejected, "THINGSPACE_PASSWORD", "<html>"}, false},
		{"proxy page answered 200", func(w *world) string {
			srv, _ := notThingSpace(t, w.sim, http.StatusOK, "text/html", proxyPage)
			w.env["THINGSPACE_BASE_URL"] = srv.URL
			return srv.URL + loginPath
		}, []string{"THINGSPACE_BASE_URL"}, []string{rejected, "THINGSPACE_PASSWORD", "<html>"}, false},
		{"the API's own 404 at the login path", func(w *world) string {
			// The simulator answers a path it does not serve as the API
			// does: 404 with INPUT_INVALID.RequestUndefined, an M2M
			// errorCode that is still no verdict on the password.
			w.env["THINGSPACE_BASE_URL"] += "/wrong"
			return w.env["THINGSPACE_BASE_URL"] + "/api/"
		}, []string{"THINGSPACE_BASE_URL", "RequestUndefined"}, []string{rejected, "THINGSPACE_PASSWORD"}, false},
		{"login rejected", func(w *world) string {
			w.sim.SetFaults(simulator.Faults{RejectLogin: true})
			return ""
		}, []string{rejected, "THINGSPACE_USERNAME", "THINGSPACE_PASSWORD"}, []string{"THINGSPACE_BASE_URL"}, true},
		{"bad client secret", func(w *world) string {
			w.env["THINGSPACE_CLIENT_SECRET"] = "wrong-client-secret"
			return ""
		}, []string{"THINGSPACE_CLIENT_ID", "THINGSPACE_CLIENT_SECRET"}, []string{rejected, "THINGSPACE_BASE_URL", "wrong-client-secret"}, false},
		{"unknown account", func(w *world) string {
			w.env["THINGSPACE_ACCOUNT_NAME"] = "0000999999-00001"
			return ""
		}, []string{"THINGSPACE_ACCOUNT_NAME", "0000999999-00001"}, []string{rejected, "THINGSPACE_BASE_URL"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, simulator.Options{Devices: 3})
			url := tt.setup(w)
			secrets := []string{w.env["THINGSPACE_PASSWORD"], w.env["THINGSPACE_CLIENT_SECRET"]}
			for _, cmd := range []string{"check", "sync"} {
				code, out := w.run(cmd)
				t.Logf("%s:\n%s", cmd, out)
				if code != 3 {
					t.Errorf("%s: exit %d, want 3\n%s", cmd, code, out)
				}
				want := tt.want
				if url != "" {
					want = append(want, url)
				}
				for _, s := range want {
					if !strings.Contains(out, s) {
						t.Errorf("%s: output does not name %q:\n%s", cmd, s, out)
					}
				}
				for _, s := range append(tt.wantNot, secrets...) {
					if strings.Contains(out, s) {
						t.Errorf("%s: output has %q:\n%s", cmd, s, out)
					}
				}
			}
		})
	}
}

// A daemon keeps running, and runs again at its next time, when the base
// URL answers 404 or a proxy's page at the login path, the client secret is
// refused or the account is unknown: /healthz names the setting to fix.
// Only a rejected login stops it (TestRunLoginRejected).
func TestRunKeepsGoingUnlessLoginRejected(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(w *world)
		setting string
	}{
		{"404 at the login path", func(w *world) {
			srv, _ := notThingSpace(t, w.sim, http.StatusNotFound, "text/plain; charset=utf-8", "404 page not found\n")
			w.env["THINGSPACE_BASE_URL"] = srv.URL
		}, "THINGSPACE_BASE_URL"},
		{"bad client secret", func(w *world) { w.env["THINGSPACE_CLIENT_SECRET"] = "wrong-client-secret" }, "THINGSPACE_CLIENT_SECRET"},
		{"unknown account", func(w *world) { w.env["THINGSPACE_ACCOUNT_NAME"] = "0000999999-00001" }, "THINGSPACE_ACCOUNT_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, simulator.Options{Devices: 3})
			tt.setup(w)
			d := startDaemon(t, w, map[string]string{"THINGSYNC_SCHEDULE": "@every 1s"})
			waitFor(t, 30*time.Second, "a second failed run", func() bool {
				return sample(t, d.metrics(), "thingsync_runs_total", "status=failed") >= 2
			})
			code, h := d.health()
			if code != http.StatusServiceUnavailable || !strings.Contains(h.Reason, tt.setting) || strings.Contains(h.Reason, "rejected the") {
				t.Errorf("/healthz = %d %+v; want 503 naming %s, not a rejected login", code, h, tt.setting)
			}
			if strings.Contains(d.log(), "no further runs") || strings.Contains(d.log(), "wrong-client-secret") {
				t.Errorf("the daemon stopped running, or logged the secret:\n%s", d.log())
			}
		})
	}
}

// THINGSPACE_BASE_URL with credentials in it: check prints the URL
// without them.
func TestCheckRedactsBaseURL(t *testing.T) {
	w := newWorld(t, simulator.Options{Devices: 3})
	w.env["THINGSPACE_BASE_URL"] = strings.Replace(w.env["THINGSPACE_BASE_URL"], "http://", "http://proxyuser:hunter2@", 1)
	code, out := w.run("check")
	if strings.Contains(out, "hunter2") || strings.Contains(out, "proxyuser") {
		t.Errorf("check printed the URL's credentials (exit %d):\n%s", code, out)
	}
	if !strings.Contains(out, "ok   login") {
		t.Errorf("check with credentials in the URL did not log in (exit %d):\n%s", code, out)
	}
	w.env["THINGSPACE_BASE_URL"] = "ftp://proxyuser:hunter2@example.com"
	code, out = w.run("check")
	if code != 2 || strings.Contains(out, "hunter2") {
		t.Errorf("a bad URL with credentials: exit %d, want 2 and no password:\n%s", code, out)
	}
}
