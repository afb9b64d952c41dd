// Command ferretdb runs FerretDB (a MongoDB wire-protocol server) for this
// repository's tests, through FerretDB's embeddable package.
//
// A plain `go install .../cmd/ferretdb` binary panics at start because the
// module zip lacks build/version/version.txt; the embeddable package skips
// that check, so this wrapper is what scripts/services.sh builds.
//
// The TLS flags have the names of upstream FerretDB's. An empty -listen-addr
// disables the plain listener (TLS only). Note that with -listen-tls-ca-file
// FerretDB requires a client certificate signed by that CA from every client
// (tls.RequireAndVerifyClientCert); without it, no client certificate is asked for.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (empty: none)")
	listenTLS := flag.String("listen-tls", "", "TLS address to listen on (empty: none)")
	tlsCert := flag.String("listen-tls-cert-file", "", "TLS server certificate file (PEM)")
	tlsKey := flag.String("listen-tls-key-file", "", "TLS server key file (PEM)")
	tlsCA := flag.String("listen-tls-ca-file", "", "TLS CA file (PEM); when set, client certificates signed by it are required")
	handler := flag.String("handler", "sqlite", "backend handler: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URL (a directory, ending with /)")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL for the postgresql handler")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "bad -log-level: %v\n", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP:         *listen,
			TLS:         *listenTLS,
			TLSCertFile: *tlsCert,
			TLSKeyFile:  *tlsKey,
			TLSCAFile:   *tlsCA,
		},
		Logger:        logger,
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger.Warn("ferretdb listening", "uri", f.MongoDBURI(), "handler", *handler)
	if err := f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}
}
