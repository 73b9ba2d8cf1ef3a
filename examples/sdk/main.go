// Command sdk shows the Go client: it creates a customer, lists the
// project's customers and asks for a customer's subscription.
//
//	BILLING_URL=http://localhost:8080 BILLING_API_KEY=pk_... BILLING_SECRET_KEY=sk_... \
//	BILLING_TENANT_ID=ten_... BILLING_PROJECT_ID=prj_... go run ./examples/sdk
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/stackfordevs/billing/client"
)

func main() {
	ctx := context.Background()
	c := client.New(os.Getenv("BILLING_URL"), client.Credentials{
		APIKey:    os.Getenv("BILLING_API_KEY"),
		SecretKey: os.Getenv("BILLING_SECRET_KEY"),
		TenantID:  os.Getenv("BILLING_TENANT_ID"),
		ProjectID: os.Getenv("BILLING_PROJECT_ID"),
	}, client.WithEnvironment(client.Test))

	cus, err := c.CreateCustomer(ctx, client.CustomerRequest{Email: "ada@example.com", Name: "Ada Lovelace"},
		client.WithIdempotencyKey("signup-ada"))
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		log.Fatalf("%s (%s, field %q, request %s)", apiErr.Message, apiErr.Code, apiErr.Param, apiErr.RequestID)
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", cus.ID)

	for cus, err := range c.ListCustomers(ctx, client.ListCustomersParams{Limit: 50}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(cus.ID, cus.Email)
	}

	sub, err := c.GetSubscription(ctx, "ada@example.com")
	switch {
	case err != nil:
		log.Fatal(err)
	case sub == nil:
		fmt.Println("ada@example.com has no subscription")
	default:
		fmt.Println("ada@example.com is", sub.Status, "on", sub.PlanID, "until", sub.CurrentPeriodEnd)
	}
}
