//go:build !sendonly

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"sockmail/internal/api"
	"sockmail/internal/config"
	"sockmail/internal/store"
)

// maxTokenName bounds a token's name.
const maxTokenName = 64

// runToken runs "sockmail token add -name NAME -scopes send,read
// [-expires 720h]": it makes an API token, stores its hash and prints the
// token, once, on stdout (nothing else goes there, so that a script can
// read it).
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const use = "usage: sockmail token add -name NAME -scopes send,read,captured,admin [-expires 720h] [-data DIR] [-database DSN]"
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(stderr, use)
		return 2
	}
	fs := flag.NewFlagSet("sockmail token add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the token's name, unique (required)")
	scopes := fs.String("scopes", "", "comma-separated scopes: send, read, captured, admin (required)")
	expires := fs.Duration("expires", 0, "lifetime of the token (e.g. 720h); 0: it does not expire")
	var rest []string
	fs.Func("data", "data directory (SOCKMAIL_DATA)", func(v string) error { rest = append(rest, "-data", v); return nil })
	fs.Func("database", "SQLite file or postgres:// URL (SOCKMAIL_DATABASE)", func(v string) error { rest = append(rest, "-database", v); return nil })
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sockmail: token add: unexpected argument %q\n%s\n", fs.Arg(0), use)
		return 2
	}
	n := strings.TrimSpace(*name)
	if err := checkTokenName(n); err != nil {
		fmt.Fprintf(stderr, "sockmail: token add: -name: %v\n", err)
		return 2
	}
	sc, err := api.ParseScopes(*scopes)
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: token add: -scopes: %v\n", err)
		return 2
	}
	if *expires < 0 {
		fmt.Fprintf(stderr, "sockmail: token add: -expires: %v is negative\n", *expires)
		return 2
	}
	cfg, err := config.Load(append(rest, "-capture-addr", "off"), getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: %v\n", err)
		return 2
	}
	st, code := openCommandStore(ctx, cfg, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	tok, hash, err := api.NewToken()
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: %v\n", err)
		return 1
	}
	t := &store.APIToken{Name: n, Hash: hash, Scopes: sc, CreatedBy: "sockmail token add"}
	if *expires > 0 {
		exp := time.Now().Add(*expires)
		t.ExpiresAt = &exp
	}
	err = st.CreateAPIToken(ctx, t)
	if errors.Is(err, store.ErrExists) {
		fmt.Fprintf(stderr, "sockmail: a token named %q exists already\n", n)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "token %q (id %d, scopes %s) added; it is shown only this once\n", n, t.ID, strings.Join(sc, ","))
	return 0
}

// checkTokenName tells what is wrong with a token name, or nil.
func checkTokenName(n string) error {
	switch {
	case n == "":
		return errors.New("a name is required")
	case !utf8.ValidString(n) || utf8.RuneCountInString(n) > maxTokenName:
		return fmt.Errorf("at most %d characters of UTF-8", maxTokenName)
	case strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errors.New("no control characters")
	}
	return nil
}
