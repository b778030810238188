package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/thingsync/thingsync/internal/clip"
)

// APIError is an error answer of the API: the M2M services' body
// {"errorCode","errorMessage"} or the gateway's {"fault":{...}}.
type APIError struct {
	Status int
	// Code is the errorCode without its service prefix, e.g.
	// "REQUEST_FAILED.SessionToken.Expired".
	Code    string
	Message string
	// Fault marks the gateway's shape; FaultCode is its numeric code
	// (900901 invalid or expired bearer, 900902 missing).
	Fault     bool
	FaultCode int
}

func (e *APIError) Error() string {
	switch {
	case e.Fault:
		return fmt.Sprintf("HTTP %d: gateway fault %d: %s", e.Status, e.FaultCode, e.Message)
	case e.Code != "":
		return fmt.Sprintf("HTTP %d: %s: %s", e.Status, e.Code, e.Message)
	default:
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
}

// sessionBad tells whether the error says the session token must be
// renewed: decided by errorCode, never by status (the vendor documents
// these errors as HTTP 400, other clients have seen 401 and 403).
func (e *APIError) sessionBad() bool { return strings.Contains(e.Code, "SessionToken") }

func (e *APIError) bearerBad() bool {
	return e.Fault && (e.FaultCode == 900901 || e.FaultCode == 900902)
}

// undefined tells whether the answer says the API serves no such request
// (a wrong base URL or path), whatever the credentials.
func (e *APIError) undefined() bool {
	return e.Status == http.StatusNotFound || e.Status == http.StatusMethodNotAllowed || strings.HasSuffix(e.Code, ".RequestUndefined")
}

func (e *APIError) unexpected() bool { return e.Code == "REQUEST_FAILED.UnexpectedError" }

// rangeRefused tells whether a history request's answer refuses its range
// as too long. The vendor documents no limit nor its code: any
// INPUT_INVALID error whose code names a range (INPUT_INVALID.DateRange,
// the code the aggregate endpoint gives its period) is taken for one; a
// malformed date is INPUT_INVALID.Request.InvalidCharacter.
func (e *APIError) rangeRefused() bool {
	return strings.HasPrefix(e.Code, "INPUT_INVALID.") && strings.Contains(strings.ToLower(e.Code), "range")
}

// refusedRange marks an error answer that refuses a history request's
// range with ErrRangeRefused.
func refusedRange(err error) error {
	var api *APIError
	if errors.As(err, &api) && api.rangeRefused() {
		return fmt.Errorf("%w: %w", ErrRangeRefused, err)
	}
	return err
}

var (
	// ErrRangeTimeout: the API could not answer the range in time
	// (REQUEST_FAILED.UnexpectedError twice, HTTP 504, or the client's own
	// timeout). The caller splits the window.
	ErrRangeTimeout = errors.New("range timed out")
	// ErrRangeRefused: the API refused the range as longer than one
	// request may span (an INPUT_INVALID error naming a range). The
	// caller asks narrower windows and learns the width (RangeLimit).
	ErrRangeRefused = errors.New("range longer than the API answers")
	// ErrNoProgress: a page did not move the paging cursor forward.
	ErrNoProgress = errors.New("paging cursor did not advance")
	// ErrTooManyPages: a window's history kept answering hasMoreData past
	// the most pages a window of its length can need.
	ErrTooManyPages = errors.New("too many pages")
	// ErrListRepeats: a device-list page said there was more but listed
	// only devices already listed.
	ErrListRepeats = errors.New("device list repeats itself")
	// ErrLoginRejected: the API refused the username or password. It is
	// never retried: five failures lock the account.
	ErrLoginRejected = errors.New("login rejected")
)

// TooLargeError is an answer, or the pages of one window together, larger
// than the client's cap (ClientConfig.MaxBodyBytes): what the API sends
// must not decide how much memory a run takes.
type TooLargeError struct {
	Limit int64
	// Size is the announced size of a refused answer (-1: unknown, the
	// answer was cut off at the cap).
	Size int64
	// Window is set when the pages of one window together passed the cap.
	Window bool
}

func (e *TooLargeError) Error() string {
	what := "answer larger than"
	switch {
	case e.Window:
		what = "the window's pages together hold more than"
	case e.Size >= 0:
		what = fmt.Sprintf("answer of %d bytes is larger than", e.Size)
	}
	return fmt.Sprintf("%s the %s cap (THINGSYNC_MAX_ANSWER_MB)", what, sizeText(e.Limit))
}

// sizeText writes a byte count in MiB when it is a whole number of them.
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d-byte", n)
}

// LoginError is a rejected login: the API's own error answer (an M2M
// errorCode) to the login request. errors.Is(err, ErrLoginRejected) holds.
type LoginError struct{ API *APIError }

func (e *LoginError) Error() string {
	if strings.Contains(e.API.Code, "Locked") {
		return fmt.Sprintf("ThingSpace refused the login: the user is locked after failed logins (%s); ThingSpace support unlocks it, "+
			"then fix THINGSPACE_USERNAME or THINGSPACE_PASSWORD", e.API.Code)
	}
	return fmt.Sprintf("ThingSpace rejected the username or password (%s): fix THINGSPACE_USERNAME or THINGSPACE_PASSWORD; "+
		"not retried, five failed logins lock the account", e.API.Code)
}

func (e *LoginError) Is(target error) bool { return target == ErrLoginRejected }
func (e *LoginError) Unwrap() error        { return e.API }

// NotAPIError is an answer ThingSpace does not give: a 404 page, a proxy's
// HTML error, a body that is not the API's JSON. The base URL is wrong, or
// something between here and ThingSpace answered.
type NotAPIError struct {
	Method, URL string // URL without userinfo
	Status      int
	ContentType string
	Err         error // why the body was not the API's, if it was a 2xx
}

func (e *NotAPIError) Error() string {
	what := fmt.Sprintf("HTTP %d", e.Status)
	if ct := e.ContentType; ct != "" {
		if i := strings.IndexByte(ct, ';'); i >= 0 {
			ct = ct[:i]
		}
		what += " (" + strings.TrimSpace(ct) + ")"
	}
	if e.Err != nil {
		what += ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s %s answered %s, not as the ThingSpace API does: check THINGSPACE_BASE_URL "+
		"(or a proxy in between)", e.Method, e.URL, what)
}

// CredentialsError is the token endpoint refusing the OAuth client
// credentials.
type CredentialsError struct{ API *APIError }

func (e *CredentialsError) Error() string {
	return fmt.Sprintf("ThingSpace refused the OAuth client credentials (%s): fix THINGSPACE_CLIENT_ID or THINGSPACE_CLIENT_SECRET", e.API)
}

func (e *CredentialsError) Unwrap() error { return e.API }

// AccountError is the API not knowing the configured account.
type AccountError struct {
	Account string
	API     *APIError
}

func (e *AccountError) Error() string {
	return fmt.Sprintf("ThingSpace knows no account %q (%s): fix THINGSPACE_ACCOUNT_NAME", e.Account, e.API.Code)
}

func (e *AccountError) Unwrap() error { return e.API }

// fromAPI tells whether an error answer has one of the API's own shapes:
// the M2M services' errorCode or the gateway's fault.
func (e *APIError) fromAPI() bool { return e.Fault || e.Code != "" }

// parseError reads an error answer. The message is kept short: it ends up
// in logs and in sync_checkpoints.last_error.
func parseError(status int, body []byte) *APIError {
	e := &APIError{Status: status}
	var m struct {
		ErrorCode    string `json:"errorCode"`
		ErrorMessage string `json:"errorMessage"`
		Fault        *struct {
			Code    json.Number `json:"code"`
			Message string      `json:"message"`
		} `json:"fault"`
	}
	if err := json.Unmarshal(body, &m); err == nil {
		switch {
		case m.Fault != nil:
			e.Fault = true
			fmt.Sscan(m.Fault.Code.String(), &e.FaultCode)
			e.Message = m.Fault.Message
		case m.ErrorCode != "":
			code := m.ErrorCode
			if i := strings.Index(code, "."); i >= 0 && !strings.HasPrefix(code, "INPUT_INVALID") && !strings.HasPrefix(code, "REQUEST_FAILED") {
				code = code[i+1:]
			}
			e.Code, e.Message = code, m.ErrorMessage
		}
	}
	if e.Message == "" && e.Code == "" && !e.Fault {
		e.Message = clip.Text(strings.TrimSpace(string(body)), 200)
	}
	e.Message = clip.Text(e.Message, 500)
	return e
}
