package storetest_test

import (
	"testing"

	"github.com/stackfordevs/billing/store/storetest"
)

func TestFakeSealer(t *testing.T) {
	old, cur := storetest.FakeSealer{KeyID: "old"}, storetest.FakeSealer{}
	sealed, err := old.Seal("sk_test_123")
	if err != nil {
		t.Fatal(err)
	}
	if sealed == "sk_test_123" || !cur.NeedsRotation(sealed) || old.NeedsRotation(sealed) {
		t.Errorf("sealed %q: rotation by current %v, by old %v", sealed, cur.NeedsRotation(sealed), old.NeedsRotation(sealed))
	}
	got, err := cur.Open(sealed)
	if err != nil || got != "sk_test_123" {
		t.Errorf("open: got %q, %v, want sk_test_123", got, err)
	}
	if _, err := cur.Open("plaintext"); err == nil {
		t.Error("open of an unsealed value: got no error")
	}
}

func TestEachDB(t *testing.T) {
	var backends []string
	storetest.Each(t, func(t *testing.T, dsn string) {
		backends = append(backends, t.Name())
		db := storetest.MustOpenDSN(t, dsn, storetest.FakeSealer{})
		p := storetest.MustCreateProject(t, db)
		if p.ID == "" || p.TenantID == "" {
			t.Errorf("project: got %+v", p)
		}
	})
	if want := len(storetest.Backends()); len(backends) != want {
		t.Errorf("ran on %v, want %d backends", backends, want)
	}
}
