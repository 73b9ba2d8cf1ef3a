package client_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/stackfordevs/billing/client"
)

// The SDK's types and methods are written by hand for Go callers; these
// tests hold them to openapi.yaml, so that a change of the spec that the
// SDK does not follow fails here.

// sdkTypes are the SDK types that are schemas of the spec, by schema name.
var sdkTypes = map[string]any{
	"LineItem":                     client.LineItem{},
	"CreateCheckoutSessionRequest": client.CreateCheckoutSessionRequest{},
	"CheckoutSession":              client.CheckoutSession{},
	"CreatePaymentIntentRequest":   client.CreatePaymentIntentRequest{},
	"PaymentIntent":                client.PaymentIntent{},
	"CreatePortalSessionRequest":   client.CreatePortalSessionRequest{},
	"PortalSession":                client.PortalSession{},
	"CustomerRequest":              client.CustomerRequest{},
	"Customer":                     client.Customer{},
	"Subscription":                 client.Subscription{},
	"WebhookEvent":                 client.WebhookEvent{},
	"StripeSetupRequest":           client.StripeSetupRequest{},
	"StripeSetup":                  client.StripeSetup{},
	"AuthSetupRequest":             client.AuthSetupRequest{},
	"AuthSetup":                    client.AuthSetup{},
	"UsageCount":                   client.UsageCount{},
	"SyncJob":                      client.SyncJob{},
	"SyncCounts":                   client.SyncCounts{},
}

// notSDKTypes are the schemas the SDK has no type for, and why.
var notSDKTypes = map[string]string{
	"Environment":          "client.Environment",
	"EnvironmentFilter":    "client.Environment in UsageParams",
	"Metadata":             "map[string]string",
	"Error":                "read into *client.Error",
	"ErrorBody":            "read into *client.Error",
	"CustomerList":         "paged by ListCustomers",
	"WebhookEventList":     "paged by ListWebhookEvents",
	"UsageList":            "returned as a slice by GetUsage",
	"SubscriptionResponse": "GetSubscription returns nil for null",
	"DeletedCustomer":      "DeleteCustomer returns only an error",
	"StripeEvent":          "sent by Stripe, not by applications",
	"WebhookAck":           "answered to Stripe",
	"NameRequest":          "admin API",
	"Tenant":               "admin API",
	"ProjectCredentials":   "admin API; client.Credentials holds them",
	"SyncResult":           "admin API",
	"Health":               "operations",
}

// notSDKOperations are the operations the SDK does not call.
var notSDKOperations = []string{
	"receiveStripeWebhook", "getHealth", "getReady",
	"adminCreateTenant", "adminCreateProject", "adminRotateProjectSecret", "adminSyncProject", "adminGetSyncJob", "adminGetUsage",
}

// methodNames are the SDK methods not named after their operationId.
var methodNames = map[string]string{
	"getCustomerSubscription": "GetSubscription",
}

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	spec, err := openapi3.NewLoader().LoadFromFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestEveryOperationHasAMethod(t *testing.T) {
	spec := loadSpec(t)
	cType := reflect.TypeOf(&client.Client{})
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			if slices.Contains(notSDKOperations, op.OperationID) {
				continue
			}
			name, ok := methodNames[op.OperationID]
			if !ok {
				name = strings.ToUpper(op.OperationID[:1]) + op.OperationID[1:]
			}
			if _, ok := cType.MethodByName(name); !ok {
				t.Errorf("%s %s (%s): got no method %s on *client.Client", method, path, op.OperationID, name)
			}
		}
	}
}

func TestEverySchemaHasAType(t *testing.T) {
	spec := loadSpec(t)
	for name := range spec.Components.Schemas {
		_, isType := sdkTypes[name]
		_, isNot := notSDKTypes[name]
		if !isType && !isNot {
			t.Errorf("schema %s: got no SDK type; add one to client/ and sdkTypes, or say why not in notSDKTypes", name)
		}
	}
	for name := range sdkTypes {
		if spec.Components.Schemas[name] == nil {
			t.Errorf("sdkTypes names %s, which the spec does not have", name)
		}
	}
}

func TestTypesMatchSchemas(t *testing.T) {
	spec := loadSpec(t)
	for name, v := range sdkTypes {
		ref := spec.Components.Schemas[name]
		if ref == nil {
			continue
		}
		request := strings.HasSuffix(name, "Request") || name == "LineItem"
		checkStruct(t, name, reflect.TypeOf(v), ref.Value, request)
	}
}

var timeType = reflect.TypeOf(time.Time{})

// checkStruct holds the JSON fields of a struct to an object schema: the
// same properties, compatible types, and in a request, every optional
// property left out when empty.
func checkStruct(t *testing.T, where string, typ reflect.Type, s *openapi3.Schema, request bool) {
	t.Helper()
	fields := map[string]reflect.StructField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Errorf("%s.%s: got no json name", where, f.Name)
			continue
		}
		fields[name] = f
		prop := s.Properties[name]
		if prop == nil {
			t.Errorf("%s.%s: json %q is not a property of the schema", where, f.Name, name)
			continue
		}
		required := slices.Contains(s.Required, name)
		omitempty := strings.Contains(opts, "omitempty")
		if request && !required && !omitempty {
			t.Errorf("%s.%s: optional property %q is sent even when empty; want omitempty", where, f.Name, name)
		}
		if request && required && omitempty {
			t.Errorf("%s.%s: required property %q is left out when empty; want no omitempty", where, f.Name, name)
		}
		checkType(t, where+"."+f.Name, f.Type, prop.Value, request)
	}
	for name := range s.Properties {
		if _, ok := fields[name]; !ok {
			t.Errorf("%s: got no field for property %q", where, name)
		}
	}
}

func checkType(t *testing.T, where string, typ reflect.Type, s *openapi3.Schema, request bool) {
	t.Helper()
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case s.Type.Is("string") && s.Format == "date-time":
		if typ != timeType {
			t.Errorf("%s: got %s, want time.Time for a date-time", where, typ)
		}
	case s.Type.Is("string"):
		if typ.Kind() != reflect.String {
			t.Errorf("%s: got %s, want a string kind", where, typ)
		}
	case s.Type.Is("integer"):
		if k := typ.Kind(); k != reflect.Int && k != reflect.Int64 {
			t.Errorf("%s: got %s, want int or int64", where, typ)
		}
	case s.Type.Is("boolean"):
		if typ.Kind() != reflect.Bool {
			t.Errorf("%s: got %s, want bool", where, typ)
		}
	case s.Type.Is("array"):
		if typ.Kind() != reflect.Slice {
			t.Errorf("%s: got %s, want a slice", where, typ)
			return
		}
		checkType(t, where+"[]", typ.Elem(), s.Items.Value, request)
	case s.Type.Is("object") && s.AdditionalProperties.Schema != nil:
		if typ.Kind() != reflect.Map || typ.Key().Kind() != reflect.String {
			t.Errorf("%s: got %s, want a map", where, typ)
			return
		}
		checkType(t, where+"[]", typ.Elem(), s.AdditionalProperties.Schema.Value, request)
	case s.Type.Is("object"):
		if typ.Kind() != reflect.Struct {
			t.Errorf("%s: got %s, want a struct", where, typ)
			return
		}
		checkStruct(t, where, typ, s, request)
	default:
		t.Errorf("%s: schema type %v has no rule here", where, s.Type)
	}
}
