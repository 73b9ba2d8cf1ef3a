package server

import (
	"context"
	"errors"
	"strings"
	"time"

	billing "github.com/stackfordevs/billing"
	"github.com/stackfordevs/billing/gen"
	"github.com/stackfordevs/billing/internal/intents"
)

// reservedMetadata are the metadata keys the service sets itself.
var reservedMetadata = []string{"tenant_id", "project_id"}

// checkMetadata rejects reserved keys sent by the caller, in any letter
// case (Stripe's metadata keys are case-sensitive, but a "Project_ID" beside
// the service's "project_id" would mislead whoever reads them).
func checkMetadata(m *gen.Metadata) error {
	if m == nil {
		return nil
	}
	for k := range *m {
		for _, r := range reservedMetadata {
			if strings.EqualFold(k, r) {
				return billing.FieldErrorf("metadata."+k, "metadata.%s: is reserved and set by the service", k)
			}
		}
	}
	return nil
}

// taggedMetadata returns the caller's metadata plus the tenant and project ids.
func taggedMetadata(p *billing.Project, m *gen.Metadata) map[string]string {
	out := map[string]string{"tenant_id": p.TenantID, "project_id": p.ID}
	if m != nil {
		for k, v := range *m {
			out[k] = v
		}
	}
	return out
}

func customerParams(b *gen.CustomerRequest, md map[string]string) billing.CustomerParams {
	cp := billing.CustomerParams{
		Name:        b.Name,
		Description: b.Description,
		Phone:       b.Phone,
		Metadata:    md,
	}
	if b.Email != nil {
		e := string(*b.Email)
		cp.Email = &e
	}
	return cp
}

// CreateCustomer creates a Stripe customer tagged with the tenant and
// project ids, and records it as the project's.
func (s *Server) CreateCustomer(ctx context.Context, req gen.CreateCustomerRequestObject) (gen.CreateCustomerResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkMetadata(req.Body.Metadata); err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	client, _, err := s.stripeClient(ctx, p, env)
	if err != nil {
		return nil, err
	}
	md := taggedMetadata(p, req.Body.Metadata)
	params := customerParams(req.Body, md)
	var rec billing.Customer
	out, err := s.intents.Do(ctx, intents.Request{
		ProjectID: p.ID, Environment: env, Operation: intents.CustomerCreate,
		IdempotencyKey: deref(req.Params.IdempotencyKey), Params: params,
	}, func(ctx context.Context, key string) (string, any, error) {
		c, err := client.CreateCustomer(ctx, params, key)
		if err != nil {
			return "", nil, createError(err)
		}
		rec = s.customerRecord(p, env, c, req.Body, md)
		return c.ID, rec, nil
	})
	if err != nil {
		return nil, err
	}
	if out.Replayed {
		found, err := s.ownedCustomer(ctx, p, env, out.ObjectID)
		if err != nil {
			return nil, err
		}
		rec = *found
	}
	return gen.CreateCustomer200JSONResponse(customerJSON(&rec)), nil
}

// customerRecord merges what Stripe returned with what was sent: a field
// Stripe left empty takes the sent value (stripe-mock and some API versions
// do not echo every field), and the metadata is the tagged metadata sent.
// Its EventAt is Stripe's time of the answer.
func (s *Server) customerRecord(p *billing.Project, env billing.Environment, c *billing.Customer, b *gen.CustomerRequest, md map[string]string) billing.Customer {
	rec := *c
	rec.ProjectID = p.ID
	rec.Environment = env
	fill := func(dst *string, sent *string) {
		if *dst == "" && sent != nil {
			*dst = *sent
		}
	}
	if rec.Email == "" && b.Email != nil {
		rec.Email = string(*b.Email)
	}
	fill(&rec.Name, b.Name)
	fill(&rec.Description, b.Description)
	fill(&rec.Phone, b.Phone)
	if len(md) > 0 {
		rec.Metadata = md
	}
	rec.UserID = rec.Metadata["user_id"]
	if rec.Created.IsZero() {
		rec.Created = s.now()
	}
	return rec
}

// ListCustomers lists the project's customers from the local record, newest
// first. An environment without Stripe keys is EFORBIDDEN, as everywhere.
func (s *Server) ListCustomers(ctx context.Context, req gen.ListCustomersRequestObject) (gen.ListCustomersResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	if _, err := s.stripeSettings(ctx, p.ID, env); err != nil {
		return nil, err
	}
	limit := 10
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	cs, more, err := s.store.ListCustomers(ctx, billing.CustomerFilter{
		ProjectID:     p.ID,
		Environment:   env,
		Email:         deref(req.Params.Email),
		StartingAfter: deref(req.Params.StartingAfter),
		Limit:         limit,
	})
	var be *billing.Error
	if errors.As(err, &be) && be.Param == "starting_after" {
		return nil, billing.FieldErrorf("starting_after",
			"starting_after: %s is not a customer of this list.", deref(req.Params.StartingAfter))
	} else if err != nil {
		return nil, err
	}
	out := gen.ListCustomers200JSONResponse{Object: gen.CustomerListObjectList, HasMore: more, Data: make([]gen.Customer, 0, len(cs))}
	for i := range cs {
		out.Data = append(out.Data, customerJSON(&cs[i]))
	}
	return out, nil
}

// GetCustomer returns a customer of the project, fresh from Stripe.
func (s *Server) GetCustomer(ctx context.Context, req gen.GetCustomerRequestObject) (gen.GetCustomerResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	client, _, err := s.stripeClient(ctx, p, env)
	if err != nil {
		return nil, err
	}
	rec, err := s.ownedCustomer(ctx, p, env, req.Id)
	if err != nil {
		return nil, err
	}
	c, err := client.GetCustomer(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	if c.Deleted {
		_ = s.mirror.DeleteCustomer(ctx, p.ID, env, req.Id, c.EventAt)
		return nil, notFound(nil, "id", "No such customer: "+req.Id+".")
	}
	out := mergeCustomer(rec, c)
	return gen.GetCustomer200JSONResponse(customerJSON(&out)), nil
}

// UpdateCustomer updates a customer of the project.
func (s *Server) UpdateCustomer(ctx context.Context, req gen.UpdateCustomerRequestObject) (gen.UpdateCustomerResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkMetadata(req.Body.Metadata); err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	client, _, err := s.stripeClient(ctx, p, env)
	if err != nil {
		return nil, err
	}
	rec, err := s.ownedCustomer(ctx, p, env, req.Id)
	if err != nil {
		return nil, err
	}
	var md map[string]string
	if req.Body.Metadata != nil {
		md = taggedMetadata(p, req.Body.Metadata)
	}
	c, err := client.UpdateCustomer(ctx, req.Id, customerParams(req.Body, md), deref(req.Params.IdempotencyKey))
	if err != nil {
		return nil, err
	}
	upd := *rec
	applyCustomerUpdate(&upd, req.Body, md)
	upd.EventAt = c.EventAt
	if err := s.mirror.SaveCustomer(ctx, upd); err != nil {
		return nil, err
	}
	out := mergeCustomer(&upd, c)
	return gen.UpdateCustomer200JSONResponse(customerJSON(&out)), nil
}

func applyCustomerUpdate(c *billing.Customer, b *gen.CustomerRequest, md map[string]string) {
	if b.Email != nil {
		c.Email = string(*b.Email)
	}
	if b.Name != nil {
		c.Name = *b.Name
	}
	if b.Description != nil {
		c.Description = *b.Description
	}
	if b.Phone != nil {
		c.Phone = *b.Phone
	}
	if md != nil {
		// Stripe merges metadata keys and removes a key sent empty; the
		// record follows.
		merged := make(map[string]string, len(c.Metadata)+len(md))
		for k, v := range c.Metadata {
			merged[k] = v
		}
		for k, v := range md {
			if v == "" {
				delete(merged, k)
			} else {
				merged[k] = v
			}
		}
		c.Metadata = merged
		if uid := md["user_id"]; uid != "" {
			c.UserID = uid
		}
	}
}

// DeleteCustomer deletes a customer of the project.
func (s *Server) DeleteCustomer(ctx context.Context, req gen.DeleteCustomerRequestObject) (gen.DeleteCustomerResponseObject, error) {
	p, err := project(ctx)
	if err != nil {
		return nil, err
	}
	env := envOf(req.Params.Environment)
	client, _, err := s.stripeClient(ctx, p, env)
	if err != nil {
		return nil, err
	}
	if _, err := s.ownedCustomer(ctx, p, env, req.Id); err != nil {
		return nil, err
	}
	var at time.Time // Stripe's time of the deletion; none when Stripe had deleted it already
	if c, err := client.DeleteCustomer(ctx, req.Id); err == nil {
		at = c.EventAt
	} else if billing.ErrorCode(err) != billing.ENOTFOUND {
		return nil, err
	}
	if err := s.mirror.DeleteCustomer(ctx, p.ID, env, req.Id, at); err != nil {
		return nil, err
	}
	return gen.DeleteCustomer200JSONResponse{Id: req.Id, Object: gen.DeletedCustomerObjectCustomer, Deleted: true}, nil
}

// ownedCustomer returns the project's record of a customer, or ENOTFOUND
// for any id the project did not create or receive.
func (s *Server) ownedCustomer(ctx context.Context, p *billing.Project, env billing.Environment, id string) (*billing.Customer, error) {
	c, err := s.store.FindCustomer(ctx, p.ID, env, id)
	if err != nil {
		return nil, notFound(err, "id", "No such customer: "+id+".")
	}
	return c, nil
}

// mergeCustomer prefers Stripe's fields and falls back to the record's for
// any Stripe left empty.
func mergeCustomer(rec, c *billing.Customer) billing.Customer {
	out := *rec
	if c.Email != "" {
		out.Email = c.Email
	}
	if c.Name != "" {
		out.Name = c.Name
	}
	if c.Description != "" {
		out.Description = c.Description
	}
	if c.Phone != "" {
		out.Phone = c.Phone
	}
	if len(c.Metadata) > 0 {
		out.Metadata = c.Metadata
	}
	return out
}

func customerJSON(c *billing.Customer) gen.Customer {
	md := c.Metadata
	if md == nil {
		md = map[string]string{}
	}
	out := gen.Customer{Id: c.ID, Object: gen.CustomerObjectCustomer, Metadata: md}
	out.Email = optional(c.Email)
	out.Name = optional(c.Name)
	out.Description = optional(c.Description)
	out.Phone = optional(c.Phone)
	if !c.Created.IsZero() {
		out.Created = ptr(c.Created.Unix())
	}
	return out
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
