package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
// renewed: decided by errorCode, never by status (NOTES.md).
func (e *APIError) sessionBad() bool { return strings.Contains(e.Code, "SessionToken") }

func (e *APIError) bearerBad() bool {
	return e.Fault && (e.FaultCode == 900901 || e.FaultCode == 900902)
}

func (e *APIError) unexpected() bool { return e.Code == "REQUEST_FAILED.UnexpectedError" }

var (
	// ErrRangeTimeout: the API could not answer the range in time
	// (REQUEST_FAILED.UnexpectedError twice, HTTP 504, or the client's own
	// timeout). The caller splits the window.
	ErrRangeTimeout = errors.New("range timed out")
	// ErrNoProgress: a page did not move the paging cursor forward.
	ErrNoProgress = errors.New("paging cursor did not advance")
	// ErrLoginRejected: the API refused the username or password. It is
	// never retried: five failures lock the account.
	ErrLoginRejected = errors.New("login rejected")
)

// LoginError is a rejected login. errors.Is(err, ErrLoginRejected) holds.
type LoginError struct{ API *APIError }

func (e *LoginError) Error() string {
	return "login rejected by ThingSpace (not retried: five failures lock the account; check THINGSPACE_USERNAME and THINGSPACE_PASSWORD): " + e.API.Error()
}

func (e *LoginError) Is(target error) bool { return target == ErrLoginRejected }
func (e *LoginError) Unwrap() error        { return e.API }

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
		s := strings.TrimSpace(string(body))
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		e.Message = s
	}
	if len(e.Message) > 500 {
		e.Message = e.Message[:500] + "…"
	}
	return e
}
