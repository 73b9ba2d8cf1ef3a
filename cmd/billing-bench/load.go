package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// load is the outcome of one measurement: a closed loop of concurrency
// workers, each sending its next request as soon as the last one answered.
type load struct {
	Requests uint64
	// Throughput is successful (2xx or 3xx) answers per second.
	Throughput float64
	P50, P99   time.Duration
	Codes      map[string]int
	Errors     []string
	// CPU is the CPU time of the process measured over it (see
	// cpuUse.measured), -1 when it could not be read, 0 when not measured.
	CPU time.Duration
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// newTransport returns the keep-alive transport of one target, shared by
// all its measurements so that connections stay warm between rounds.
func newTransport() *http.Transport {
	return &http.Transport{
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
}

// attack runs tr for d with concurrency requests in flight through rt, and
// calls each (when not nil) with every result.
func attack(ctx context.Context, name string, tr vegeta.Targeter, rt http.RoundTripper, concurrency int, d time.Duration, keepBody bool, each func(*vegeta.Result)) load {
	maxBody := int64(0)
	if keepBody {
		maxBody = -1
	}
	a := vegeta.NewAttacker(
		vegeta.Client(&http.Client{Transport: rt, Timeout: 30 * time.Second}),
		vegeta.Workers(uint64(concurrency)),
		vegeta.MaxWorkers(uint64(concurrency)),
		vegeta.MaxBody(maxBody),
		vegeta.Redirects(vegeta.NoFollow),
	)
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	var m vegeta.Metrics
	for res := range a.Attack(tr, vegeta.Rate{}, d, name) {
		m.Add(res)
		if each != nil {
			each(res)
		}
	}
	m.Close()
	return load{
		Requests:   m.Requests,
		Throughput: m.Throughput,
		P50:        m.Latencies.P50,
		P99:        m.Latencies.P99,
		Codes:      m.StatusCodes,
		Errors:     m.Errors,
	}
}

// tally adds up the status codes and errors of several measurements.
type tally struct {
	codes  map[string]int
	errors map[string]int
}

func (t *tally) add(l load) {
	if t.codes == nil {
		t.codes, t.errors = map[string]int{}, map[string]int{}
	}
	for c, n := range l.Codes {
		t.codes[c] += n
	}
	for _, e := range l.Errors {
		t.errors[e]++
	}
}

// succeeded returns the number of 2xx answers.
func (t *tally) succeeded() int {
	n := 0
	for c, k := range t.codes {
		if strings.HasPrefix(c, "2") {
			n += k
		}
	}
	return n
}

// failed returns the number of answers that were not 2xx (code 0 is a
// transport error).
func (t *tally) failed() int {
	n := 0
	for c, k := range t.codes {
		if !strings.HasPrefix(c, "2") {
			n += k
		}
	}
	return n
}

func (t *tally) String() string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(t.codes)) {
		label := c
		if c == "0" {
			label = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s x%d", label, t.codes[c]))
	}
	s := strings.Join(parts, ", ")
	if len(t.errors) > 0 {
		errs := slices.Sorted(maps.Keys(t.errors))
		if len(errs) > 3 {
			errs = append(errs[:3], "...")
		}
		s += "; errors: " + strings.Join(errs, " | ")
	}
	return s
}
