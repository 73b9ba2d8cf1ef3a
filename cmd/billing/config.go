package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stackfordevs/billing/internal/secret"
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
	RedisPrefix        string
	CreatesPerHour     int
	QueriesPerHour     int
	AutoMigrate        bool
	Dev                bool
	LogLevel           slog.Level
	MetricsToken       string
	UsageFlush         time.Duration
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
		CreatesPerHour:     1000,
		QueriesPerHour:     5000,
		AutoMigrate:        true,
		Dev:                truthy(getenv("BILLING_DEV")),
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	var err error
	if c.CreatesPerHour, err = intEnv(getenv, "BILLING_RATE_LIMIT_CREATES_PER_HOUR", c.CreatesPerHour); err != nil {
		return c, err
	}
	if c.QueriesPerHour, err = intEnv(getenv, "BILLING_RATE_LIMIT_QUERIES_PER_HOUR", c.QueriesPerHour); err != nil {
		return c, err
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
	if v := getenv("BILLING_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("BILLING_LOG_LEVEL: %w", err)
		}
	}
	return c, nil
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
	return secret.ParseKeyring(key, c.PreviousMasterKeys)
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
		return nil, err
	}
	if migrate {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := db.Migrate(mctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}
