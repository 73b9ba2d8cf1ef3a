package intents_test

import (
	"context"
	"testing"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/internal/intents"
)

// memStore is an intent ledger in memory, which can be made to fail.
type memStore struct {
	m       map[string]billing.Intent
	down    bool
	records []any
}

func (s *memStore) BeginIntent(_ context.Context, in billing.Intent) (billing.Intent, bool, error) {
	if s.down {
		return billing.Intent{}, false, billing.Errorf(billing.EUNAVAILABLE, "The database is unavailable.")
	}
	if got, ok := s.m[in.IdempotencyKey]; ok {
		return got, false, nil
	}
	in.State = billing.IntentPending
	s.m[in.IdempotencyKey] = in
	return in, true, nil
}

func (s *memStore) CompleteIntent(_ context.Context, _ string, _ billing.Environment, key, id string, record any) error {
	if s.down {
		return billing.Errorf(billing.EUNAVAILABLE, "The database is unavailable.")
	}
	in := s.m[key]
	in.State, in.ObjectID = billing.IntentCompleted, id
	s.m[key] = in
	s.records = append(s.records, record)
	return nil
}

func (s *memStore) AbandonIntent(_ context.Context, _ string, _ billing.Environment, key string) error {
	if s.m[key].State == billing.IntentPending {
		delete(s.m, key)
	}
	return nil
}

func TestDo(t *testing.T) {
	ctx := context.Background()
	req := intents.Request{ProjectID: "prj_1", Environment: billing.EnvTest, Operation: intents.CustomerCreate,
		IdempotencyKey: "k1", Params: map[string]string{"email": "a@example.com"}}
	calls := 0
	call := func(id string, err error) func(context.Context, string) (string, any, error) {
		return func(_ context.Context, key string) (string, any, error) {
			calls++
			if key != "k1" {
				t.Errorf("got key %q, want the caller's", key)
			}
			return id, "record of " + id, err
		}
	}

	t.Run("ErrDatabaseDownNoCall", func(t *testing.T) {
		s := &memStore{m: map[string]billing.Intent{}, down: true}
		calls = 0
		_, err := (&intents.Recorder{Store: s}).Do(ctx, req, call("cus_1", nil))
		if billing.ErrorCode(err) != billing.EUNAVAILABLE || calls != 0 {
			t.Errorf("got %v after %d calls, want EUNAVAILABLE and no call", err, calls)
		}
	})
	t.Run("RetryAfterRecordFailed", func(t *testing.T) {
		s := &memStore{m: map[string]billing.Intent{}}
		r := &intents.Recorder{Store: s}
		calls = 0
		_, err := r.Do(ctx, req, func(ctx context.Context, key string) (string, any, error) {
			s.down = true // the database goes away once Stripe answered
			return call("cus_1", nil)(ctx, key)
		})
		if err == nil || s.m["k1"].State != billing.IntentPending {
			t.Fatalf("got %v and %+v, want the error and a pending intent", err, s.m["k1"])
		}
		s.down = false
		out, err := r.Do(ctx, req, call("cus_1", nil))
		if err != nil || out.ObjectID != "cus_1" || out.Replayed || calls != 2 {
			t.Fatalf("retry: got %+v, %v after %d calls", out, err, calls)
		}
		if len(s.records) != 1 || s.records[0] != "record of cus_1" {
			t.Errorf("got records %v, want the object's record written with the completion", s.records)
		}
		out, err = r.Do(ctx, req, call("cus_2", nil))
		if err != nil || !out.Replayed || out.ObjectID != "cus_1" || calls != 2 {
			t.Errorf("after completion: got %+v, %v after %d calls; want a replay without a call", out, err, calls)
		}
		other := req
		other.Params = map[string]string{"email": "b@example.com"}
		if _, err := r.Do(ctx, other, call("cus_3", nil)); billing.ErrorCode(err) != billing.EINVALID {
			t.Errorf("same key, other request: got %v, want EINVALID", err)
		}
		buyer := req
		buyer.UserID = "user_b"
		if _, err := r.Do(ctx, buyer, call("cus_3", nil)); billing.ErrorCode(err) != billing.EINVALID {
			t.Errorf("same key, other buyer: got %v, want EINVALID", err)
		}
	})
	t.Run("RefusedAbandons", func(t *testing.T) {
		s := &memStore{m: map[string]billing.Intent{}}
		r := &intents.Recorder{Store: s}
		_, err := r.Do(ctx, req, call("", billing.Errorf(billing.EINVALID, "No such price.")))
		if billing.ErrorCode(err) != billing.EINVALID {
			t.Fatalf("got %v", err)
		}
		if _, ok := s.m["k1"]; ok {
			t.Error("a refused create left its intent")
		}
		_, err = r.Do(ctx, req, call("", billing.Errorf(billing.ETIMEOUT, "Stripe timed out.")))
		if billing.ErrorCode(err) != billing.ETIMEOUT || s.m["k1"].State != billing.IntentPending {
			t.Errorf("a timed-out create: got %v and %+v, want its intent pending", err, s.m["k1"])
		}
	})
	t.Run("GeneratedKey", func(t *testing.T) {
		s := &memStore{m: map[string]billing.Intent{}}
		noKey := req
		noKey.IdempotencyKey = ""
		out, err := (&intents.Recorder{Store: s}).Do(ctx, noKey, func(_ context.Context, key string) (string, any, error) {
			return "cus_g", nil, nil
		})
		if err != nil || out.Key == "" || s.m[out.Key].State != billing.IntentCompleted {
			t.Errorf("got %+v, %v; want a generated key, completed", out, err)
		}
	})
}
