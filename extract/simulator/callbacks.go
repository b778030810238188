package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

type callbackReg struct {
	Name     string
	URL      string
	Username string
	Password string
}

func (s *Simulator) serveCallbacks(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, m2m+"/callbacks/")
	parts := strings.Split(rest, "/")
	if parts[0] != s.opts.AccountName {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.AccountNotFound", "account not found")
		return
	}
	switch {
	case r.Method == http.MethodPost && len(parts) == 1:
		var reg callbackReg
		if err := decodeBody(r, &reg); err != nil || reg.Name == "" || reg.URL == "" {
			writeError(w, http.StatusBadRequest, "INPUT_INVALID.RequestUndefined", "name and url are required")
			return
		}
		s.mu.Lock()
		s.callbacks[reg.Name] = reg
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"accountName": s.opts.AccountName, "serviceName": reg.Name})
	case r.Method == http.MethodGet && len(parts) == 1:
		s.mu.Lock()
		list := make([]map[string]string, 0, len(s.callbacks))
		for _, reg := range s.callbacks {
			list = append(list, map[string]string{"accountName": s.opts.AccountName, "name": reg.Name, "url": reg.URL})
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, list)
	case r.Method == http.MethodDelete && len(parts) == 3 && parts[1] == "name":
		s.mu.Lock()
		delete(s.callbacks, parts[2])
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"accountName": s.opts.AccountName, "serviceName": parts[2]})
	default:
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.RequestUndefined", "unsupported callback request")
	}
}

// Callbacks returns the registered callback listeners by service name.
func (s *Simulator) Callbacks() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for n, reg := range s.callbacks {
		out[n] = reg.URL
	}
	return out
}

const (
	maxCallbackThreshold = 4
	aggLayout            = "2006-01-02T15:04:05.0000000"
)

func (s *Simulator) serveAggregate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccountName string   `json:"accountName"`
		DeviceIDs   []wireID `json:"deviceIds"`
		StartTime   string   `json:"startTime"`
		EndTime     string   `json:"endTime"`
	}
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.RequestUndefined", "request body is not valid")
		return
	}
	if req.AccountName != s.opts.AccountName {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.AccountNotFound", "account not found")
		return
	}
	start, ok1 := parseWhen(req.StartTime)
	end, ok2 := parseWhen(req.EndTime)
	now := s.Now()
	switch {
	case len(req.DeviceIDs) == 0 || len(req.DeviceIDs) > 200:
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.NumberofDevices", "between 1 and 200 devices per request")
		return
	case !ok1 || !ok2 || !start.Before(end):
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.Request.InvalidCharacter", "startTime and endTime must be dates, start before end")
		return
	case end.After(start.AddDate(0, 1, 0)):
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.DateRange", "the period is at most one month")
		return
	case start.Before(dayOf(now).AddDate(0, -6, 0)):
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.StartTime", "startTime is at most six months back")
		return
	}
	var devs []device
	for _, id := range req.DeviceIDs {
		if strings.ToLower(id.Kind) != "iccid" {
			writeError(w, http.StatusBadRequest, "INPUT_INVALID.Device.Kind.Invalid", "aggregate usage takes ICCIDs")
			return
		}
		d, ok := s.lookup(w, id)
		if !ok {
			return
		}
		devs = append(devs, d)
	}
	s.mu.Lock()
	reg, registered := s.callbacks["DeviceUsage"]
	s.mu.Unlock()
	if !registered {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.CallbackNotRegistered", "no DeviceUsage callback listener is registered")
		return
	}
	reqID := s.newToken("")
	writeJSON(w, http.StatusOK, map[string]string{"requestId": reqID})

	usage := make([]map[string]any, 0, len(devs))
	for _, d := range devs {
		a := s.aggregate(d, start, end, now)
		usage = append(usage, map[string]any{
			"deviceIdentifierCollection": []map[string]string{{"id": d.id("iccid"), "kind": "ICCID"}},
			"dataUsage":                  itoa(a.data), "smsUsage": itoa(a.sms), "moSms": itoa(a.mo), "mtSms": itoa(a.mt),
			"startDate": start.Format(aggLayout), "endDate": end.Format(aggLayout),
		})
	}
	done := map[string]any{"username": reg.Username, "password": reg.Password, "requestId": reqID,
		"deviceResponse": map[string]any{}, "comment": "Request Completed Processing"}
	data := map[string]any{"username": reg.Username, "password": reg.Password, "requestId": reqID,
		"deviceResponse": map[string]any{"devicePromoUsageResponse": usage}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-time.After(s.opts.CallbackDelay):
		case <-s.ctx.Done():
			return
		}
		s.deliver(reg.URL, done)
		s.deliver(reg.URL, data)
	}()
}

// deliver POSTs a callback, re-sending up to maxCallbackThreshold times
// while the listener does not answer 2xx.
func (s *Simulator) deliver(url string, body map[string]any) {
	for n := 1; n <= maxCallbackThreshold; n++ {
		body["callbackCount"] = n
		body["maxCallbackThreshold"] = maxCallbackThreshold
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, url, bytes.NewReader(b))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		s.mu.Lock()
		s.stats.CallbackAttempts++
		s.mu.Unlock()
		resp, err := s.opts.CallbackClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				s.mu.Lock()
				s.stats.CallbacksDelivered++
				s.mu.Unlock()
				return
			}
		}
		select {
		case <-time.After(s.opts.CallbackRetryInterval):
		case <-s.ctx.Done():
			return
		}
	}
}
