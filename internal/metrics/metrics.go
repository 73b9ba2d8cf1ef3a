// Package metrics defines the service's Prometheus metrics on a registry of
// its own, so that several instances in one process (tests) never clash.
package metrics

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the service's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	Requests         *prometheus.CounterVec
	RequestDuration  *prometheus.HistogramVec
	StripeDuration   *prometheus.HistogramVec
	StripeErrors     *prometheus.CounterVec
	WebhookEvents    *prometheus.CounterVec
	RateLimited      *prometheus.CounterVec
	RateLimiterFails prometheus.Counter
}

// New registers the service's metrics, the Go runtime's and the process's.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "billing_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		StripeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "billing_stripe_request_duration_seconds", Help: "Stripe API call latency by operation.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"operation"}),
		StripeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_stripe_errors_total", Help: "Failed Stripe API calls by operation and error code.",
		}, []string{"operation", "code"}),
		WebhookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_webhook_events_total", Help: "Stripe webhook events by type and outcome (received, applied, ignored, duplicate, failed, rejected).",
		}, []string{"type", "outcome"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_rate_limit_rejections_total", Help: "Calls rejected by the rate limit, by class (create, query).",
		}, []string{"class"}),
		RateLimiterFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_rate_limiter_errors_total", Help: "Rate-limit decisions made in process because Redis failed.",
		}),
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.StripeDuration, m.StripeErrors, m.WebhookEvents,
		m.RateLimited, m.RateLimiterFails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveUsageLag exports how long ago usage counts were last flushed.
func (m *Metrics) ObserveUsageLag(lag func() time.Duration) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_usage_flush_lag_seconds", Help: "Seconds since usage counts were last written to the database.",
	}, func() float64 { return lag().Seconds() }))
}

// ObserveRequest records one answered HTTP request.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.Requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.RequestDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// ObserveStripe records one Stripe call; code is "" on success.
func (m *Metrics) ObserveStripe(operation string, d time.Duration, code string) {
	m.StripeDuration.WithLabelValues(operation).Observe(d.Seconds())
	if code != "" {
		m.StripeErrors.WithLabelValues(operation, code).Inc()
	}
}

// Handler serves the metrics; with a token, only to `Authorization: Bearer <token>`.
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"Invalid metrics token.","request_id":""}}`))
			return
		}
		h.ServeHTTP(w, r)
	})
}
