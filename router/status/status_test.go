package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	why := "not yet"
	h := Handler(reg, func() map[string]string { return map[string]string{"kafka": why, "output a": ""} })

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.Equal(t, Report{Ready: false, NotReady: map[string]string{"kafka": "not yet"}}, rep)

	why = ""
	code, body = get("/readyz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"ready":true}`, body)

	code, _ = get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body = get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "x_total 3")
}
