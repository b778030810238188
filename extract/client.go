package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"

	"github.com/thingsync/thingsync/config/logging"
)

// ClientConfig configures a Client. Zero values take the defaults noted.
type ClientConfig struct {
	BaseURL      string
	ClientID     string
	ClientSecret string
	Username     string
	Password     string
	AccountName  string

	RateLimit float64 // requests per second, all endpoints, retries and logins included
	// RateAuto makes RateLimit the most the rate may reach: the client
	// finds the account's ceiling itself (AdaptiveRate), starting at
	// RateLearned (what an earlier run learned; 0: RateStart).
	RateAuto       bool
	RateLearned    float64
	Concurrency    int           // sizes the keep-alive pool (default 8)
	RequestTimeout time.Duration // per attempt (default 60 s)
	MaxRetries     int           // retries of 429, 5xx and network errors (default 5)
	MaxRetryWait   time.Duration // total backoff per call (default 2 min)
	BackoffBase    time.Duration // first backoff step (default 500 ms)
	// MaxBodyBytes caps one answer, and all the pages of one window
	// together (default 16 MiB): past it the call fails for that device,
	// unretried. A legitimate page of 500 records is 20 KB to 1 MB.
	MaxBodyBytes int64
	// UnexpectedErrorPause is the pause before the one repeat of
	// REQUEST_FAILED.UnexpectedError (default 5 s): the API finishes the
	// first request in the background and answers the repeat from cache.
	UnexpectedErrorPause time.Duration
	HTTPClient           *http.Client // optional
	// Observer, if set, hears of every attempt as it ends and of every
	// change of the rate ceiling (the daemon's live metrics).
	Observer Observer
}

// Observer hears of a Client's work as it happens. Its methods are called
// from the client's goroutines, concurrently, and must not block.
type Observer interface {
	// Attempt is one request sent to endpoint, retries and logins
	// included: status is the HTTP status of the answer, 0 when there was
	// none (a timeout, a broken connection, an answer refused as too
	// large); retry says it repeats an earlier attempt of the same call.
	Attempt(endpoint string, status int, retry bool)
	// RateLimit is the ceiling the client keeps from now on, in requests
	// per second over every endpoint.
	RateLimit(perSecond float64)
}

// DefaultMaxBodyBytes is the default of ClientConfig.MaxBodyBytes.
const DefaultMaxBodyBytes = 16 << 20

// Client is the ThingSpace API client. One Client serves a whole run; it is
// safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	http    *http.Client
	limiter *rate.Limiter
	// adaptive decides the limiter's rate under RateAuto (nil: fixed).
	adaptive *AdaptiveRate
	// queue admits one request at a time to the limiter under RateAuto.
	// A limiter whose rate rises while many wait repays their backlog at
	// the new rate while their turns, booked at the old one, still stand:
	// for a while it lets through more than either rate. With one waiter
	// a new rate applies from the next turn.
	queue chan struct{}
	log   zerolog.Logger
	oauth clientcredentials.Config

	// shownBase is the base URL as messages print it: without userinfo.
	shownBase string

	tokMu  sync.Mutex
	tok    *oauth2.Token
	tokGen int

	sessMu  sync.Mutex
	sess    string
	sessGen int
	sessErr error // a rejected login: sticky, never retried

	counters counters
}

// NewClient builds a client. It does not talk to the API yet.
func NewClient(cfg ClientConfig, log zerolog.Logger) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("client: base URL is required")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.RateLimit <= 0 {
		return nil, errors.New("client: rate limit must be positive")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = 2 * time.Minute
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 500 * time.Millisecond
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.UnexpectedErrorPause <= 0 {
		cfg.UnexpectedErrorPause = 5 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          cfg.Concurrency * 2,
			MaxIdleConnsPerHost:   cfg.Concurrency * 2,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.RequestTimeout,
			ForceAttemptHTTP2:     true,
		}}
	}
	c := &Client{
		cfg:       cfg,
		http:      hc,
		shownBase: logging.RedactURL(cfg.BaseURL),
		// Burst 1: the ceiling holds over any one-second window, not just on
		// average.
		limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), 1),
		log:     log,
	}
	c.oauth = clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     cfg.BaseURL + tokenPath,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	c.counters.init()
	if cfg.RateAuto {
		// No cut goes below what the devices in flight need (a request
		// waits at most a minute for its turn), nor above the ceiling.
		least := min(float64(cfg.Concurrency)/60, cfg.RateLimit)
		c.queue = make(chan struct{}, 1)
		c.adaptive = NewAdaptiveRate(cfg.RateLearned, cfg.RateLimit, least, nil, func(r float64) {
			c.limiter.SetLimit(rate.Limit(r))
			if cfg.Observer != nil {
				cfg.Observer.RateLimit(r)
			}
		})
	} else if cfg.Observer != nil {
		cfg.Observer.RateLimit(cfg.RateLimit)
	}
	return c, nil
}

// RateLimit is the ceiling the client keeps now, in requests per second.
func (c *Client) RateLimit() float64 {
	if c.adaptive != nil {
		return c.adaptive.Rate()
	}
	return c.cfg.RateLimit
}

// LearnedRate is the rate the next run may start at (AdaptiveRate.Learned);
// ok is false when there is none, or the rate is fixed.
func (c *Client) LearnedRate() (perSecond float64, ok bool) {
	if c.adaptive == nil {
		return 0, false
	}
	return c.adaptive.Learned()
}

// turn waits for a request's turn: under RateAuto in the queue and out of
// any Retry-After pause, then the limiter's. It returns the send time to
// hand to answered.
func (c *Client) turn(ctx context.Context) (time.Time, error) {
	if c.adaptive == nil {
		return time.Time{}, c.limiter.Wait(ctx)
	}
	select {
	case c.queue <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	defer func() { <-c.queue }()
	for {
		if d := time.Until(c.adaptive.PausedUntil()); d > 0 {
			if err := sleep(ctx, d); err != nil {
				return time.Time{}, err
			}
		}
		if err := c.limiter.Wait(ctx); err != nil {
			return time.Time{}, err
		}
		// A pause that began while this request waited for the limiter
		// holds it too.
		if !time.Now().Before(c.adaptive.PausedUntil()) {
			return c.adaptive.Sent(), nil
		}
	}
}

// answered tells the adaptive rate how a request sent at sent was answered
// (status 0: no answer).
func (c *Client) answered(sent time.Time, status int, retryAfter time.Duration) {
	if c.adaptive != nil {
		c.adaptive.Answered(sent, status, retryAfter)
	}
}

// limitedTransport puts token requests under the same rate ceiling.
type limitedTransport struct {
	c    *Client
	base http.RoundTripper
}

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	sent, err := t.c.turn(r.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.base.RoundTrip(r)
	status := 0
	var retryAfter time.Duration
	if err == nil {
		status = resp.StatusCode
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	t.c.answered(sent, status, retryAfter)
	t.c.attempted("token", status, false)
	return resp, err
}

// bearer returns a valid bearer token, fetching one when there is none, it
// is about to expire, or force is set because the gateway refused gen.
func (c *Client) bearer(ctx context.Context, forceGen int) (string, int, error) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	// A token serves until it expires or the gateway refuses it. Renewing
	// early gains nothing: asked again inside its life, the API returns the
	// same token with what is left of it, so a margin only re-asks on
	// every call once inside it (every call at all for a token that lives
	// less than the margin). A request that
	// reaches the gateway just after the expiry is refused once and
	// repeated with a new token (call).
	fresh := c.tok != nil && (c.tok.Expiry.IsZero() || time.Now().Before(c.tok.Expiry))
	if fresh && (forceGen < 0 || forceGen != c.tokGen) {
		return c.tok.AccessToken, c.tokGen, nil
	}
	base := c.http.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc := &http.Client{Transport: limitedTransport{c: c, base: base}, Timeout: c.cfg.RequestTimeout}
	tctx := context.WithValue(ctx, oauth2.HTTPClient, hc)
	tok, err := c.oauth.Token(tctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, ctx.Err()
		}
		return "", 0, c.tokenError(err)
	}
	c.tok = tok
	c.tokGen++
	c.counters.tokenRefresh()
	return tok.AccessToken, c.tokGen, nil
}

// tokenError says what the token endpoint's failure means and which
// setting fixes it.
func (c *Client) tokenError(err error) error {
	tokenURL := c.shownBase + tokenPath
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("get bearer token from %s: %w: check THINGSPACE_BASE_URL", tokenURL, sanitizeNetErr(err))
		}
		// A 2xx answer that is no token: not the API.
		return fmt.Errorf("get bearer token: %w", &NotAPIError{Method: http.MethodPost, URL: tokenURL, Status: http.StatusOK, Err: err})
	}
	status := re.Response.StatusCode
	apiErr := parseError(status, re.Body)
	if apiErr.undefined() {
		return fmt.Errorf("get bearer token: POST %s: the API serves no such request (%s): check THINGSPACE_BASE_URL", tokenURL, apiErr)
	}
	switch {
	case apiErr.bearerBad() || re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client":
		return &CredentialsError{API: apiErr}
	case !apiErr.fromAPI() && re.ErrorCode == "":
		return fmt.Errorf("get bearer token: %w", &NotAPIError{Method: http.MethodPost, URL: tokenURL, Status: status, ContentType: re.Response.Header.Get("Content-Type")})
	}
	return fmt.Errorf("get bearer token: %w", apiErr)
}

// tokenPath is where the gateway issues bearer tokens.
const tokenPath = "/api/ts/v1/oauth2/token"

// session returns the shared session token, logging in when there is none
// or when the session gen was found bad. Only one login runs at a time;
// goroutines that saw the same bad session wait for it and reuse its token.
func (c *Client) session(ctx context.Context, badGen int) (string, int, error) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sessErr != nil {
		return "", 0, c.sessErr
	}
	if c.sess != "" && (badGen < 0 || badGen != c.sessGen) {
		return c.sess, c.sessGen, nil
	}
	if badGen >= 0 && c.sess != "" {
		c.counters.relogin()
		c.log.Info().Msg("session expired; logging in again")
	}
	var out struct {
		SessionToken string `json:"sessionToken"`
	}
	body := map[string]string{"username": c.cfg.Username, "password": c.cfg.Password}
	err := c.call(ctx, "login", http.MethodPost, "/api/m2m/v1/session/login", body, &out, callOpts{noSession: true})
	if err != nil {
		// Only the API's own error answer (an M2M errorCode) is a rejected
		// login; a 404 page or a proxy's error is not (NotAPIError), and
		// the next run may try again.
		var apiErr *APIError
		var notAPI *NotAPIError
		if errors.As(err, &apiErr) && apiErr.undefined() {
			// The API's answer for a path it does not serve: the login
			// never reached the credentials check, so a wrong base URL is
			// not a rejected login and costs no lockout attempt.
			return "", 0, fmt.Errorf("log in: POST %s: the API serves no such request (%s): check THINGSPACE_BASE_URL",
				c.shownBase+"/api/m2m/v1/session/login", apiErr)
		}
		if errors.As(err, &apiErr) && !errors.As(err, &notAPI) && apiErr.Code != "" && !apiErr.Fault &&
			apiErr.Status >= 400 && apiErr.Status < 500 && apiErr.Status != http.StatusTooManyRequests {
			c.sessErr = &LoginError{API: apiErr}
			return "", 0, c.sessErr
		}
		return "", 0, fmt.Errorf("log in: %w", err)
	}
	if out.SessionToken == "" {
		return "", 0, errors.New("log in: answer carries no sessionToken")
	}
	c.sess = out.SessionToken
	c.sessGen++
	return c.sess, c.sessGen, nil
}

// Login logs in now rather than on the first call; `check` uses it.
func (c *Client) Login(ctx context.Context) error {
	_, _, err := c.session(ctx, -1)
	return err
}

// Logout ends the session, if any.
func (c *Client) Logout(ctx context.Context) error {
	c.sessMu.Lock()
	had := c.sess != ""
	c.sessMu.Unlock()
	if !had {
		return nil
	}
	err := c.call(ctx, "logout", http.MethodPost, "/api/m2m/v1/session/logout", struct{}{}, nil, callOpts{})
	c.sessMu.Lock()
	c.sess = ""
	c.sessMu.Unlock()
	return err
}

type callOpts struct {
	noSession bool
	// rangeCall marks history requests, whose UnexpectedError and timeouts
	// mean "split the range".
	rangeCall bool
	accept    func(status int) bool
}

// bodyDecoder is implemented by answers with a faster decoder than
// encoding/json.
type bodyDecoder interface{ decodeBody([]byte) error }

// response is one answered attempt.
type response struct {
	status      int
	contentType string
	body        []byte
	retryAfter  time.Duration
}

// call sends one API call with every resilience rule: rate ceiling, bearer
// and session renewal, retries with backoff, the UnexpectedError repeat.
// out, if not nil, receives the decoded 2xx body; the status is returned.
func (c *Client) call(ctx context.Context, endpoint, method, path string, body, out any, o callOpts) error {
	_, err := c.callStatus(ctx, endpoint, method, path, body, out, o)
	return err
}

func (c *Client) callStatus(ctx context.Context, endpoint, method, path string, body, out any, o callOpts) (int, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return 0, fmt.Errorf("encode %s request: %w", endpoint, err)
		}
	}
	log := c.log.With().Str(logging.Endpoint, endpoint).Logger()
	var (
		retries, unexpected int
		waited              time.Duration
		bearerGen, sessGen  = -1, -1
		bearerRenewed       bool
		relogins            int
	)
	for attempt := 1; ; attempt++ {
		tok, bg, err := c.bearer(ctx, bearerGen)
		if err != nil {
			return 0, err
		}
		bearerGen = -1
		var sess string
		var sg int
		if !o.noSession {
			if sess, sg, err = c.session(ctx, sessGen); err != nil {
				return 0, err
			}
			sessGen = -1
		}
		sent, err := c.turn(ctx)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		resp, err := c.send(ctx, method, path, payload, tok, sess)
		if err != nil {
			c.answered(sent, 0, 0)
			c.attempted(endpoint, 0, attempt > 1)
		} else {
			c.answered(sent, resp.status, resp.retryAfter)
			c.attempted(endpoint, resp.status, attempt > 1)
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			var big *TooLargeError
			if errors.As(err, &big) {
				// The same request would get the same answer: not retried.
				return 0, fmt.Errorf("%s: %w", endpoint, err)
			}
			timedOut := errors.Is(err, context.DeadlineExceeded) || isTimeout(err)
			log.Debug().Int(logging.Attempt, attempt).Dur(logging.DurationMS, time.Since(start)).Bool("timeout", timedOut).Msg("request failed")
			if timedOut && o.rangeCall {
				if unexpected++; unexpected > 1 {
					return 0, fmt.Errorf("%s: %w: no answer within %s", endpoint, ErrRangeTimeout, c.cfg.RequestTimeout)
				}
				continue
			}
			if d, ok := c.backoff(retries, waited, 0); ok {
				retries++
				waited += d
				if err := sleep(ctx, d); err != nil {
					return 0, err
				}
				continue
			}
			return 0, fmt.Errorf("%s: giving up after %d attempts: %w", endpoint, attempt, sanitizeNetErr(err))
		}
		log.Debug().Int(logging.Status, resp.status).Int(logging.Attempt, attempt).Dur(logging.DurationMS, time.Since(start)).Msg("request")
		if resp.status/100 == 2 {
			if out != nil && len(resp.body) > 0 {
				dec := json.Unmarshal
				if d, ok := out.(bodyDecoder); ok {
					dec = func(b []byte, _ any) error { return d.decodeBody(b) }
				}
				if err := dec(resp.body, out); err != nil {
					if !strings.Contains(resp.contentType, "json") {
						return resp.status, fmt.Errorf("%s: %w", endpoint, c.notAPI(method, path, resp, err))
					}
					return resp.status, fmt.Errorf("decode %s answer: %w", endpoint, err)
				}
			}
			return resp.status, nil
		}
		apiErr := parseError(resp.status, resp.body)
		var failure error = apiErr
		if !apiErr.fromAPI() {
			failure = c.notAPI(method, path, resp, nil)
		}
		switch {
		case apiErr.bearerBad() && !bearerRenewed:
			// The gateway refused the bearer: renew it once and repeat.
			bearerRenewed, bearerGen = true, bg
			continue
		case apiErr.sessionBad() && !o.noSession && relogins < 2:
			relogins++
			sessGen = sg
			continue
		case resp.status == http.StatusGatewayTimeout && o.rangeCall,
			apiErr.unexpected() && resp.status < 500:
			if unexpected++; unexpected > 1 {
				return resp.status, fmt.Errorf("%s: %w: %w", endpoint, ErrRangeTimeout, apiErr)
			}
			if err := sleep(ctx, c.cfg.UnexpectedErrorPause); err != nil {
				return 0, err
			}
			continue
		case resp.status == http.StatusTooManyRequests || resp.status >= 500:
			if d, ok := c.backoff(retries, waited, resp.retryAfter); ok {
				retries++
				waited += d
				log.Debug().Int(logging.Status, resp.status).Dur("backoff_ms", d).Msg("retrying")
				if err := sleep(ctx, d); err != nil {
					return 0, err
				}
				continue
			}
			return resp.status, fmt.Errorf("%s: giving up after %d attempts: %w", endpoint, attempt, failure)
		case strings.HasSuffix(apiErr.Code, ".AccountNotFound"):
			return resp.status, &AccountError{Account: c.cfg.AccountName, API: apiErr}
		}
		return resp.status, failure
	}
}

// notAPI describes an answer that is not the API's.
func (c *Client) notAPI(method, path string, resp response, err error) *NotAPIError {
	return &NotAPIError{Method: method, URL: c.shownBase + path, Status: resp.status, ContentType: resp.contentType, Err: err}
}

func (c *Client) send(ctx context.Context, method, path string, payload []byte, bearer, session string) (response, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, method, c.cfg.BaseURL+path, body)
	if err != nil {
		return response{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if session != "" {
		req.Header.Set("VZ-M2M-Token", session)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	if resp.ContentLength > c.cfg.MaxBodyBytes {
		// Refused unread: closing the body drops the connection rather
		// than reading what it announced.
		resp.Body.Close()
		return response{}, &TooLargeError{Limit: c.cfg.MaxBodyBytes, Size: resp.ContentLength}
	}
	defer func() {
		// Drain what is left so the connection goes back to the pool.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}()
	b, err := readBody(resp, c.cfg.MaxBodyBytes+1)
	if err != nil {
		return response{}, err
	}
	if int64(len(b)) > c.cfg.MaxBodyBytes {
		return response{}, &TooLargeError{Limit: c.cfg.MaxBodyBytes, Size: -1}
	}
	r := response{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: b}
	if ra := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ra > 0 {
		r.retryAfter = ra
	}
	return r, nil
}

// readBody reads at most limit bytes of the body, sized from
// Content-Length when the server sent one, so a page costs one allocation
// rather than io.ReadAll's doubling. Without one it reads in 1 MiB chunks
// and joins them: at most twice what was read is held, where io.ReadAll's
// doublings allocate about four times more by the time it reaches a cap.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n < limit {
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	r := io.LimitReader(resp.Body, limit)
	const chunk = 1 << 20
	first := make([]byte, 64<<10)
	n, err := io.ReadFull(r, first)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return first[:n], nil
	} else if err != nil {
		return nil, err
	}
	chunks := [][]byte{first}
	total := n
	for {
		c := make([]byte, chunk)
		n, err := io.ReadFull(r, c)
		chunks = append(chunks, c[:n])
		total += n
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, total)
	for _, c := range chunks {
		b = append(b, c...)
	}
	return b, nil
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// backoff returns the pause before retry n: exponential with full jitter,
// at least what the server asked for, within the call's budget.
func (c *Client) backoff(n int, waited, serverWants time.Duration) (time.Duration, bool) {
	if n >= c.cfg.MaxRetries {
		return 0, false
	}
	ceil := c.cfg.BackoffBase << min(n, 16)
	if ceil > 30*time.Second {
		ceil = 30 * time.Second
	}
	d := ceil/2 + rand.N(ceil/2+1)
	if serverWants > d {
		d = serverWants
	}
	if waited+d > c.cfg.MaxRetryWait {
		return 0, false
	}
	return d, true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sanitizeNetErr drops the URL from transport errors: query strings are a
// classic place for credentials to leak into logs.
func sanitizeNetErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}
