package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

type callbackReg struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Username string `json:"username"`
	Password string `json:"password"`
}

type callbackListJSON struct {
	AccountName string `json:"accountName"`
	Name        string `json:"name"`
	URL         string `json:"url"`
}

type serviceJSON struct {
	AccountName string `json:"accountName"`
	ServiceName string `json:"serviceName"`
}

func (s *Simulator) serveCallbacks(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, m2m+"/callbacks/"), "/")
	if parts[0] != s.opts.AccountName {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.AccountNotFound", "Account not found")
		return
	}
	switch {
	case r.Method == http.MethodPost && len(parts) == 1:
		var reg callbackReg
		if !decodeBody(r, &reg) || reg.Name == "" || reg.URL == "" {
			badBody(w)
			return
		}
		s.cbMu.Lock()
		s.callbacks[reg.Name] = reg
		s.cbMu.Unlock()
		writeJSON(w, http.StatusOK, serviceJSON{AccountName: s.opts.AccountName, ServiceName: reg.Name})
	case r.Method == http.MethodGet && len(parts) == 1:
		list := make([]callbackListJSON, 0)
		for _, reg := range s.callbackList() {
			list = append(list, callbackListJSON{AccountName: s.opts.AccountName, Name: reg.Name, URL: reg.URL})
		}
		writeJSON(w, http.StatusOK, list)
	case r.Method == http.MethodDelete && len(parts) == 3 && parts[1] == "name":
		s.cbMu.Lock()
		_, ok := s.callbacks[parts[2]]
		delete(s.callbacks, parts[2])
		s.cbMu.Unlock()
		if !ok {
			writeError(w, http.StatusBadRequest, "REQUEST_FAILED.CallbackNotFound", "No callback listener is registered for "+parts[2])
			return
		}
		writeJSON(w, http.StatusOK, serviceJSON{AccountName: s.opts.AccountName, ServiceName: parts[2]})
	default:
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.RequestUndefined", "Unsupported callback request")
	}
}

func (s *Simulator) callbackList() []callbackReg {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	out := make([]callbackReg, 0, len(s.callbacks))
	for _, reg := range s.callbacks {
		out = append(out, reg)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Callbacks returns the registered callback listeners' URLs by service
// name.
func (s *Simulator) Callbacks() map[string]string {
	out := map[string]string{}
	for _, reg := range s.callbackList() {
		out[reg.Name] = reg.URL
	}
	return out
}

const (
	maxCallbackThreshold = 4
	// aggLayout is the aggregate callbacks' zone-less timestamp.
	aggLayout = "2006-01-02T15:04:05.0000000"
	// aggregateService is the callback service that carries aggregate
	// results. [choice] The vendor's pages do not name it; DeviceUsage is
	// the likely one.
	aggregateService = "DeviceUsage"
)

// The two callbacks of a promo aggregate request, fields in the order of
// the vendor's page.
type aggCallback struct {
	Username             string            `json:"username"`
	Password             string            `json:"password"`
	RequestID            string            `json:"requestId"`
	DeviceResponse       aggDeviceResponse `json:"deviceResponse"`
	Comment              string            `json:"comment,omitempty"`
	CallbackCount        int               `json:"callbackCount"`
	MaxCallbackThreshold int               `json:"maxCallbackThreshold"`
}

type aggDeviceResponse struct {
	DevicePromoUsageResponse []aggUsage `json:"devicePromoUsageResponse,omitempty"`
}

type aggUsage struct {
	DeviceIdentifierCollection []idJSON `json:"deviceIdentifierCollection"`
	DataUsage                  string   `json:"dataUsage"`
	SMSUsage                   string   `json:"smsUsage"`
	MoSMS                      string   `json:"moSms"`
	MtSMS                      string   `json:"mtSms"`
	StartDate                  string   `json:"startDate"`
	EndDate                    string   `json:"endDate"`
}

func (s *Simulator) serveAggregate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccountName string   `json:"accountName"`
		DeviceIDs   []wireID `json:"deviceIds"`
		DeviceID    []wireID `json:"deviceId"` // the page's table names it so
		StartTime   string   `json:"startTime"`
		EndTime     string   `json:"endTime"`
	}
	if !decodeBody(r, &req) {
		badBody(w)
		return
	}
	if req.AccountName != s.opts.AccountName {
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.AccountNotFound", "Account not found")
		return
	}
	ids := append(req.DeviceIDs, req.DeviceID...)
	start, ok1 := parseWhen(req.StartTime)
	end, ok2 := parseWhen(req.EndTime)
	now := s.Now()
	switch {
	case len(ids) == 0 || len(ids) > 200:
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.NumberofDevices", "Between 1 and 200 devices per request")
		return
	case !ok1 || !ok2:
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.Request.InvalidCharacter", "startTime and endTime must be date-times")
		return
	case !start.Before(end):
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.EndTime", "endTime must be after startTime")
		return
	case end.After(start.AddDate(0, 1, 0)):
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.DateRange", "The period is at most one month")
		return
	case start.Before(dayOf(now).AddDate(0, -6, 0)):
		writeError(w, http.StatusBadRequest, "INPUT_INVALID.StartTime", "startTime is at most six months back")
		return
	}
	devs := make([]*device, 0, len(ids))
	for _, id := range ids {
		if strings.ToLower(id.Kind) != "iccid" {
			writeError(w, http.StatusBadRequest, "INPUT_INVALID.Device.Kind.Invalid", "Aggregate usage takes ICCIDs")
			return
		}
		d, ok := s.lookup(w, id)
		if !ok {
			return
		}
		s.countDevice(epAggregate, d)
		devs = append(devs, d)
	}
	// The delivery is added to the wait group under the lock Close takes
	// to cancel, so Close always waits for it.
	s.cbMu.Lock()
	reg, registered := s.callbacks[aggregateService]
	closed := s.ctx.Err() != nil
	if registered && !closed {
		s.wg.Add(1)
	}
	s.cbMu.Unlock()
	switch {
	case !registered:
		// [choice] Without a listener the results could go nowhere.
		writeError(w, http.StatusBadRequest, "REQUEST_FAILED.CallbackNotRegistered", "No DeviceUsage callback listener is registered for the account")
		return
	case closed:
		writeError(w, http.StatusServiceUnavailable, "REQUEST_FAILED.ServiceUnavailable", "The service is shutting down")
		return
	}
	reqID := s.newToken()
	user, pass := reg.Username, reg.Password
	if user == "" {
		user = "null" // as the page's examples show an unset credential
	}
	if pass == "" {
		pass = "null"
	}
	done := aggCallback{Username: user, Password: pass, RequestID: reqID, Comment: "Request Completed Processing", MaxCallbackThreshold: maxCallbackThreshold}
	data := aggCallback{Username: user, Password: pass, RequestID: reqID, MaxCallbackThreshold: maxCallbackThreshold}
	for _, d := range devs {
		a := s.aggregate(d, start, end, now)
		data.DeviceResponse.DevicePromoUsageResponse = append(data.DeviceResponse.DevicePromoUsageResponse, aggUsage{
			DeviceIdentifierCollection: []idJSON{{ID: d.id("iccid"), Kind: "ICCID"}},
			DataUsage:                  strconv.FormatInt(a.data, 10),
			SMSUsage:                   strconv.FormatInt(a.sms, 10),
			MoSMS:                      strconv.FormatInt(a.mo, 10),
			MtSMS:                      strconv.FormatInt(a.mt, 10),
			StartDate:                  start.Format(aggLayout),
			EndDate:                    end.Format(aggLayout),
		})
	}
	if s.lost.Add(-1) >= 0 {
		s.wg.Done()
		writeJSON(w, http.StatusOK, map[string]string{"requestId": reqID})
		return
	}
	go func() {
		defer s.wg.Done()
		if !s.pause(s.opts.CallbackDelay) {
			return
		}
		if s.deliver(reg.URL, done) {
			s.deliver(reg.URL, data)
		}
	}()
	writeJSON(w, http.StatusOK, map[string]string{"requestId": reqID})
}

// pause waits d unless the simulator closes first.
func (s *Simulator) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// deliver POSTs a callback, re-sending it (callbackCount counting the
// deliveries) up to maxCallbackThreshold times while the listener does not
// answer 2xx. It tells whether to go on: false once the simulator closes.
func (s *Simulator) deliver(url string, body aggCallback) bool {
	for n := 1; n <= maxCallbackThreshold; n++ {
		if s.ctx.Err() != nil {
			return false
		}
		body.CallbackCount = n
		b, err := json.Marshal(body)
		if err != nil {
			return false
		}
		req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, url, bytes.NewReader(b))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		s.ctr.attempts.Add(1)
		resp, err := s.opts.CallbackClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				s.ctr.delivered.Add(1)
				return true
			}
		}
		if n < maxCallbackThreshold && !s.pause(s.opts.CallbackRetryInterval) {
			return false
		}
	}
	s.ctr.abandoned.Add(1)
	return true
}
