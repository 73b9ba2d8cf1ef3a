package stripeadapter_test

import (
	"encoding/json"
	"testing"
)

func mustUnmarshal(tb testing.TB, b []byte, v any) {
	tb.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("unmarshal %.200s: %v", b, err)
	}
}
