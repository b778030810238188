package extract

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// blockingStore holds each delivery until released, telling entered about
// each one it holds.
type blockingStore struct {
	entered chan string
	release chan struct{}
}

func (s *blockingStore) StoreCallback(ctx context.Context, cb AggregateCallback) error {
	s.entered <- cb.RequestID
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func serveReceiver(t *testing.T, rc *Receiver, l ServerLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(context.Background(), rc, l)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func callbackBody(id string) []byte {
	b, _ := json.Marshal(map[string]any{"username": "u", "password": "p", "requestId": id})
	return b
}

// closedWithin reads conn until the server closes it (EOF or reset) and
// fails if that takes longer than limit. What the server sends first (a
// 408, a 400) does not matter: the connection must not stay open.
func closedWithin(t *testing.T, conn net.Conn, limit time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("connection still open after %v", limit)
	}
}

// Slow senders and idle connections are closed after the listener's
// timeouts, however slowly they keep sending: 50 connections trickling a
// body at a byte per 100 ms, 50 sending half their headers, and one idle
// kept-alive connection, all gone within a few multiples of the timeouts.
func TestListenerClosesSlowConnections(t *testing.T) {
	store := &blockingStore{entered: make(chan string, 1), release: make(chan struct{})}
	close(store.release)
	rc := &Receiver{Username: "u", Password: "p", Store: store, Log: zerolog.Nop(), MaxConcurrent: 1000}
	limits := ServerLimits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond,
		WriteTimeout: time.Second, IdleTimeout: 300 * time.Millisecond}
	addr := serveReceiver(t, rc, limits)
	const limit = 5 * time.Second

	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer close(stop)
	for i := 0; i < 50; i++ {
		slowBody, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer slowBody.Close()
		fmt.Fprintf(slowBody, "POST /cb HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n")
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := slowBody.Write([]byte("{")); err != nil {
						return
					}
				}
			}
		}()
		slowHeaders, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer slowHeaders.Close()
		fmt.Fprintf(slowHeaders, "POST /cb HTTP/1.1\r\nHost: x\r\n")
		wg.Add(2)
		go func() { defer wg.Done(); closedWithin(t, slowBody, limit) }()
		go func() { defer wg.Done(); closedWithin(t, slowHeaders, limit) }()
	}

	// A delivery answered on a kept-alive connection, which then idles.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	body := callbackBody("r-idle")
	fmt.Fprintf(idle, "POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery on the idle connection: %d", resp.StatusCode)
	}
	<-store.entered
	wg.Add(1)
	go func() { defer wg.Done(); closedWithin(t, idle, limit) }()
	wg.Wait()
}

// Past MaxConcurrent deliveries at once, the next is answered 503 with
// Retry-After; once one finishes, deliveries are taken again.
func TestListenerCapsConcurrentCallbacks(t *testing.T) {
	const max = 4
	store := &blockingStore{entered: make(chan string, max+1), release: make(chan struct{})}
	rc := &Receiver{Username: "u", Password: "p", Store: store, Log: zerolog.Nop(), MaxConcurrent: max}
	addr := serveReceiver(t, rc, ServerLimits{})
	url := "http://" + addr + "/cb"
	post := func(id string) (*http.Response, error) {
		return http.Post(url, "application/json", bytes.NewReader(callbackBody(id)))
	}

	answers := make(chan int, max)
	for i := 0; i < max; i++ {
		go func() {
			resp, err := post(fmt.Sprint("held-", i))
			if err != nil {
				answers <- -1
				return
			}
			resp.Body.Close()
			answers <- resp.StatusCode
		}()
	}
	for i := 0; i < max; i++ {
		<-store.entered // every slot taken by a delivery being stored
	}
	// Without a cap this one would wait with the others: bounded.
	quick := &http.Client{Timeout: 5 * time.Second}
	resp, err := quick.Post(url, "application/json", bytes.NewReader(callbackBody("one-too-many")))
	if err != nil {
		t.Fatalf("delivery past the cap: %v; want an immediate 503", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("delivery past the cap: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	close(store.release)
	for i := 0; i < max; i++ {
		if code := <-answers; code != http.StatusOK {
			t.Errorf("held delivery answered %d, want 200", code)
		}
	}
	resp, err = post("after")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("delivery after the others finished: %d, want 200", resp.StatusCode)
	}
}
