package mirror

import (
	"context"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/stripeadapter"
)

// NewAccounts returns the Accounts whose settings come from settings (which
// may cache them) and whose Stripe clients come from adapter. Settings that
// are not found make the environment EFORBIDDEN.
func NewAccounts(settings func(ctx context.Context, projectID string, env billing.Environment) (*billing.StripeSettings, error), adapter *stripeadapter.Adapter) Accounts {
	return AccountsFunc(func(ctx context.Context, projectID string, env billing.Environment) (Account, error) {
		st, err := settings(ctx, projectID, env)
		if billing.ErrorCode(err) == billing.ENOTFOUND {
			return Account{}, billing.Errorf(billing.EFORBIDDEN, "Stripe is not configured for %s.", env)
		} else if err != nil {
			return Account{}, err
		}
		return Account{Settings: st, Stripe: adapter.Client(projectID, env, st.SecretKey)}, nil
	})
}
