// Package present turns the service's domain objects into the shapes of
// the API (the generated models of openapi.yaml). The HTTP answers and the
// events sent to a project's application share these functions, so that an
// object reads the same wherever it appears.
package present

import (
	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
)

// Subscription is the access shape of a subscription of a tenant's project,
// as GET /v1/customer/subscription answers it; nil for nil.
func Subscription(tenantID string, sub *billing.Subscription) *gen.Subscription {
	if sub == nil {
		return nil
	}
	out := &gen.Subscription{
		Id:                   sub.ID,
		TenantId:             tenantID,
		PlanId:               sub.PriceID,
		Status:               gen.SubscriptionStatus(sub.Status),
		CurrentPeriodEnd:     sub.CurrentPeriodEnd.UTC(),
		StripeSubscriptionId: sub.ID,
		CancelAtPeriodEnd:    sub.EndsAtPeriodEnd(),
	}
	out.Plan.Name = sub.PlanName
	if sub.TrialEnd != nil {
		t := sub.TrialEnd.UTC()
		out.TrialEnd = &t
	}
	return out
}
