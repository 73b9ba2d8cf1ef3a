package stripeadapter_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/stripeadapter"
	"github.com/stackfordevs/billing/stripeadapter/stripetest"
)

// FuzzParseEvent parses any payload as a Stripe event. It never panics; it
// refuses what is not an event with EINVALID, reports an event whose
// object it cannot read with ErrUnprocessable, and otherwise returns an
// event and a change whose every string is valid UTF-8 without NUL bytes,
// for the project it was given.
func FuzzParseEvent(f *testing.F) {
	for _, name := range stripetest.EventNames() {
		f.Add(stripetest.Event(f, name, nil))
	}
	f.Add([]byte(`{"id":"evt_1","type":"customer.created","data":{"object":{"id":"cus_\u0000","object":"customer","name":"\u0000\ud800"}}}`))
	f.Add([]byte("{\"id\":\"evt_1\",\"type\":\"customer.updated\",\"data\":{\"object\":{\"id\":\"cus_1\",\"name\":\"\xff\xfe\"}}}"))
	f.Add([]byte(`{"id":"evt_1","type":"customer.subscription.updated","data":{"object":{"id":"sub_1","object":"subscription","metadata":{"project_id":"prj_other"}}}}`))
	f.Add([]byte(`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice","subscription":{"id":"sub_1","items":{"data":[{"price":null}]}}}}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := stripeadapter.ParseEvent(payload, "prj_fuzz", billing.EnvTest)
		switch {
		case errors.Is(err, stripeadapter.ErrUnprocessable):
			if p.Event.ID == "" || !clean(err.Error()) {
				t.Fatalf("unprocessable event without an id, or an unclean error: %v", err)
			}
		case err != nil:
			if billing.ErrorCode(err) != billing.EINVALID {
				t.Fatalf("got %v, want EINVALID", err)
			}
			return
		}
		if p.Event.ID == "" || p.Event.Type == "" || p.Event.ProjectID != "prj_fuzz" {
			t.Fatalf("got event %+v", p.Event)
		}
		walkStrings(t, reflect.ValueOf(p.Event), "event")
		walkStrings(t, reflect.ValueOf(p.Change), "change")
		for _, c := range p.Change.Customers {
			if c.ProjectID != "prj_fuzz" {
				t.Fatalf("customer of project %q", c.ProjectID)
			}
		}
		for _, s := range p.Change.Subscriptions {
			if s.ProjectID != "prj_fuzz" {
				t.Fatalf("subscription of project %q", s.ProjectID)
			}
		}
	})
}

func clean(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// walkStrings fails on any string in v that is not clean. Payload bytes are
// stored as received and not walked.
func walkStrings(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		if !clean(v.String()) {
			t.Fatalf("%s: %q is not clean", path, v.String())
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(t, v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			walkStrings(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			walkStrings(t, v.Index(i), path)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkStrings(t, k, path+"[key]")
			walkStrings(t, v.MapIndex(k), path+"[value]")
		}
	}
}
