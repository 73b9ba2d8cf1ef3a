package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// Row is one line of the result table and one object of the JSON file.
// AnchorValue and Ratio are null for a measurement without an anchor.
type Row struct {
	Scenario    string   `json:"scenario"`
	Unit        string   `json:"unit"`
	Value       float64  `json:"value"`
	AnchorValue *float64 `json:"anchor_value"`
	Ratio       *float64 `json:"ratio"`
	Target      string   `json:"target"`
	Met         bool     `json:"met"`
}

// round is one round of a scenario: its value and its anchor's, measured
// back to back.
type round struct {
	value, anchor float64
}

// targetKind says what a target compares.
type targetKind int

const (
	// minRatio is met when the ratio to the anchor is at least the limit.
	minRatio targetKind = iota
	// maxValue is met when the value is below the limit.
	maxValue
	// zeroValue is met when the value is exactly zero.
	zeroValue
	// report has no goal: the row reports a measurement, met when there
	// is one.
	report
)

// target is the goal of a row.
type target struct {
	kind  targetKind
	limit float64
}

func atLeast(ratio float64) target { return target{kind: minRatio, limit: ratio} }
func below(limit float64) target   { return target{kind: maxValue, limit: limit} }
func none() target                 { return target{kind: zeroValue} }
func reported() target             { return target{kind: report} }
func (t target) text(unit string) string {
	switch t.kind {
	case minRatio:
		return fmt.Sprintf(">= %.2g x anchor", t.limit)
	case maxValue:
		return fmt.Sprintf("< %g %s", t.limit, unit)
	case report:
		return "reported"
	default:
		return "= 0"
	}
}

// met reports whether value and ratio meet the target. A ratio target
// without a ratio (no anchor, or an anchor of zero) is not met.
func (t target) met(value float64, ratio *float64) bool {
	if math.IsNaN(value) {
		return false
	}
	switch t.kind {
	case minRatio:
		return ratio != nil && *ratio >= t.limit
	case maxValue:
		return value < t.limit
	case report:
		return true
	default:
		return value == 0
	}
}

// pairedRow summarises rounds measured next to their anchor: the value and
// the anchor value are the medians of their rounds, and the ratio is the
// median of the per-round ratios (value / anchor), so that noise common to
// a round cancels. Rounds whose anchor is zero give no ratio.
func pairedRow(scenario, unit string, rounds []round, t target) Row {
	var values, anchors, ratios []float64
	for _, r := range rounds {
		values = append(values, r.value)
		anchors = append(anchors, r.anchor)
		if r.anchor != 0 && !math.IsNaN(r.anchor) && !math.IsNaN(r.value) {
			ratios = append(ratios, r.value/r.anchor)
		}
	}
	row := Row{Scenario: scenario, Unit: unit, Value: median(values), Target: t.text(unit)}
	if a := median(anchors); !math.IsNaN(a) {
		row.AnchorValue = &a
	}
	if len(ratios) > 0 {
		r := median(ratios)
		row.Ratio = &r
	}
	row.Met = t.met(row.Value, row.Ratio)
	return row
}

// soloRow summarises a measurement without an anchor: the median of values.
func soloRow(scenario, unit string, values []float64, t target) Row {
	row := Row{Scenario: scenario, Unit: unit, Value: median(values), Target: t.text(unit)}
	row.Met = t.met(row.Value, nil)
	return row
}

// median returns the median of xs, or NaN when xs is empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// jsonRows returns rows with NaN values (a measurement that failed)
// replaced by 0, which JSON can hold; such rows are never met.
func jsonRows(rows []Row) []Row {
	out := make([]Row, len(rows))
	for i, r := range rows {
		if math.IsNaN(r.Value) {
			r.Value, r.Met = 0, false
		}
		out[i] = r
	}
	return out
}

// writeJSON writes rows to path as a JSON list.
func writeJSON(path string, rows []Row) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // targets read "< 10 ms", not "\u003c 10 ms"
	enc.SetIndent("", "  ")
	if err := enc.Encode(jsonRows(rows)); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// printTable writes rows as an aligned text table.
func printTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tunit\tvalue\tanchor\tratio\ttarget\tmet")
	fmt.Fprintln(tw, "--------\t----\t-----\t------\t-----\t------\t---")
	for _, r := range rows {
		anchor, ratio := "-", "-"
		if r.AnchorValue != nil {
			anchor = formatValue(*r.AnchorValue, r.Unit)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		met := "met"
		if !r.Met {
			met = "NOT MET"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Scenario, r.Unit, formatValue(r.Value, r.Unit), anchor, ratio, r.Target, met)
	}
	return tw.Flush()
}

// formatValue prints a value with the precision its unit deserves.
func formatValue(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case strings.HasSuffix(unit, "/s"), unit == "events", unit == "requests", unit == "objects", unit == "bytes":
		return fmt.Sprintf("%.0f", v)
	case unit == "MiB":
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// formatList prints values with one decimal, separated by commas.
func formatList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, ", ")
}
