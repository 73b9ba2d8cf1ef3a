package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stackfordevs/billing/internal/secret"
	"github.com/stackfordevs/billing/server"
	"github.com/stackfordevs/billing/store"
)

// devDir holds the development master key and admin token that
// `billing serve --dev` creates once in the working directory.
const devDir = ".billing"

// config is everything the environment says.
type config struct {
	Addr               string
	DatabaseURL        string
	MasterKey          string
	PreviousMasterKeys string
	AdminToken         string
	StripeAPIBase      string
	RedisURL           string
	// Budgets are the hourly rate-limit budgets by class, each read from
	// its variable (server.BudgetClasses).
	Budgets     map[string]int
	RedisPrefix string
	AutoMigrate bool
	// AllowPrivateURLs lets JWKS URLs reach loopback and private
	// addresses (BILLING_ALLOW_PRIVATE_URLS; development mode sets it).
	AllowPrivateURLs bool
	// TrustedProxies name the proxies whose X-Forwarded-For is believed.
	TrustedProxies    []netip.Prefix
	Dev               bool
	LogLevel          slog.Level
	MetricsToken      string
	UsageFlush        time.Duration
	ReconcileInterval time.Duration
	// EventRetention is how long received webhook payloads are kept; 0
	// keeps them forever.
	EventRetention time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:               getenv("BILLING_ADDR"),
		DatabaseURL:        getenv("BILLING_DATABASE_URL"),
		MasterKey:          getenv("BILLING_MASTER_KEY"),
		PreviousMasterKeys: getenv("BILLING_MASTER_KEY_PREVIOUS"),
		AdminToken:         getenv("BILLING_ADMIN_TOKEN"),
		StripeAPIBase:      getenv("BILLING_STRIPE_API_BASE"),
		RedisURL:           getenv("BILLING_REDIS_URL"),
		RedisPrefix:        getenv("BILLING_REDIS_PREFIX"),
		MetricsToken:       getenv("BILLING_METRICS_TOKEN"),
		Budgets:            map[string]int{},
		AutoMigrate:        true,
		Dev:                truthy(getenv("BILLING_DEV")),
		ReconcileInterval:  24 * time.Hour,
		EventRetention:     30 * 24 * time.Hour,
		AllowPrivateURLs:   truthy(getenv("BILLING_ALLOW_PRIVATE_URLS")),
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	for _, b := range server.BudgetClasses() {
		n, err := intEnv(getenv, b.Env, b.PerHour)
		if err != nil {
			return c, err
		}
		c.Budgets[b.Name] = n
	}
	if c.AdminToken != "" && len(c.AdminToken) < server.MinAdminTokenLength {
		return c, fmt.Errorf("BILLING_ADMIN_TOKEN: must be at least %d characters (`billing gen-master-key` prints a random value to use)", server.MinAdminTokenLength)
	}
	if v := getenv("BILLING_TRUSTED_PROXIES"); v != "" {
		proxies, err := parsePrefixes(v)
		if err != nil {
			return c, fmt.Errorf("BILLING_TRUSTED_PROXIES: %w", err)
		}
		c.TrustedProxies = proxies
	}
	if v := getenv("BILLING_AUTO_MIGRATE"); v != "" {
		c.AutoMigrate = truthy(v)
	}
	if v := getenv("BILLING_USAGE_FLUSH_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("BILLING_USAGE_FLUSH_INTERVAL: must be a positive duration such as 5s, got %q", v)
		}
		c.UsageFlush = d
	}
	if v := getenv("BILLING_RECONCILE_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("BILLING_RECONCILE_INTERVAL: must be a duration such as 24h, or 0 to turn reconciliation off, got %q", v)
		}
		c.ReconcileInterval = d
	}
	if v := getenv("BILLING_EVENT_RETENTION"); v != "" {
		d, err := parseRetention(v)
		if err != nil {
			return c, fmt.Errorf("BILLING_EVENT_RETENTION: %w", err)
		}
		c.EventRetention = d
	}
	if v := getenv("BILLING_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("BILLING_LOG_LEVEL: %w", err)
		}
	}
	return c, nil
}

// parseRetention reads a retention period: a number of days ("30d"), a Go
// duration ("720h"), or "0" for forever. A period shorter than
// store.MinRetention is refused.
func parseRetention(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("want a number of days such as 30d, a duration such as 720h, or 0, got %q", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else if v != "0" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d < 0 {
			return 0, fmt.Errorf("want a number of days such as 30d, a duration such as 720h, or 0, got %q", v)
		}
	}
	if d != 0 && d < store.MinRetention {
		return 0, fmt.Errorf("%s is shorter than %s, the time Stripe retries a delivery: "+
			"a retried event would be stored twice", v, store.MinRetention)
	}
	return d, nil
}

// parsePrefixes reads a comma-separated list of addresses and CIDR ranges.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a CIDR range", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func truthy(v string) bool {
	b, _ := strconv.ParseBool(v)
	return b
}

func intEnv(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: must be a positive whole number, got %q", name, v)
	}
	return n, nil
}

// keyring returns the master keyring. Without BILLING_MASTER_KEY it refuses,
// unless in development mode, where a local key file is created once.
func (c config) keyring() (*secret.Keyring, error) {
	key := c.MasterKey
	if key == "" {
		if !c.Dev {
			return nil, errors.New("BILLING_MASTER_KEY is not set: create one with `billing gen-master-key`, " +
				"or run in development mode (`billing serve --dev`, or BILLING_DEV=1) to use a local key file")
		}
		k, err := readOrCreate(filepath.Join(devDir, "master.key"), secret.GenerateMasterKey)
		if err != nil {
			return nil, err
		}
		key = k
	}
	if _, err := secret.ParseKeyring(key, ""); err != nil {
		return nil, fmt.Errorf("BILLING_MASTER_KEY: %w", err)
	}
	ring, err := secret.ParseKeyring(key, c.PreviousMasterKeys)
	if err != nil {
		return nil, fmt.Errorf("BILLING_MASTER_KEY_PREVIOUS: %w", err)
	}
	return ring, nil
}

// devAdminToken returns the development admin token, created once.
func devAdminToken() (string, error) {
	return readOrCreate(filepath.Join(devDir, "admin-token"), func() (string, error) {
		return secret.NewSecretKey()
	})
}

func readOrCreate(path string, create func() (string, error)) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	v, err := create()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", err
	}
	return v, nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openStore opens and, when asked, migrates the database.
func openStore(ctx context.Context, c config, logger *slog.Logger, migrate bool) (*store.DB, error) {
	ring, err := c.keyring()
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, c.DatabaseURL, store.Options{Keyring: ring, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("BILLING_DATABASE_URL: the database cannot be opened: %w", err)
	}
	if migrate {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := db.Migrate(mctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("the database named by BILLING_DATABASE_URL cannot be migrated: %w", err)
		}
	}
	return db, nil
}
