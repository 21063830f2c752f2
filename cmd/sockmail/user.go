//go:build !sendonly

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"sockmail/internal/config"
	"sockmail/internal/store"
	"sockmail/internal/webform"
)

// runUser runs "sockmail user add -email ADDRESS": it adds an admin
// account, reading the password from SOCKMAIL_PASSWORD or, failing that,
// from a prompt (without echo on a terminal).
func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprintln(stderr, "usage: sockmail user add -email ADDRESS [-data DIR] [-database DSN]")
		return 2
	}
	fs := flag.NewFlagSet("sockmail user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "the admin's email address (required)")
	var rest []string
	// The data and database flags are the serve flags: pass them through.
	fs.Func("data", "data directory (SOCKMAIL_DATA)", func(v string) error { rest = append(rest, "-data", v); return nil })
	fs.Func("database", "SQLite file or postgres:// URL (SOCKMAIL_DATABASE)", func(v string) error { rest = append(rest, "-database", v); return nil })
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(append(rest, "-capture-addr", "off"), getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: %v\n", err)
		return 2
	}
	password := getenv("SOCKMAIL_PASSWORD")
	if password == "" {
		if password, err = promptPassword(stdin, stderr); err != nil {
			fmt.Fprintf(stderr, "sockmail: %v\n", err)
			return 1
		}
	}
	acct := &webform.Account{Email: strings.TrimSpace(*email), Password: password, Confirm: password}
	if errs := acct.ValidateSignUp(); len(errs) > 0 {
		for _, k := range []string{"email", "password"} {
			if msg, ok := errs[k]; ok {
				fmt.Fprintf(stderr, "sockmail: %s: %s\n", k, msg)
			}
		}
		return 2
	}
	st, code := openCommandStore(ctx, cfg, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: hash password: %v\n", err)
		return 1
	}
	u, err := st.CreateUser(ctx, acct.Email, string(hash))
	if errors.Is(err, store.ErrExists) {
		fmt.Fprintf(stderr, "sockmail: an account for %s exists already\n", acct.Email)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "admin account %s added (id %d)\n", u.Email, u.ID)
	return 0
}

// promptPassword asks for the password twice. On a terminal echo is
// turned off while it is typed.
func promptPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if restore, err := noEcho(int(f.Fd())); err == nil {
			defer restore()
		}
	}
	r := bufio.NewReader(stdin)
	read := func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		line, err := r.ReadString('\n')
		fmt.Fprintln(stderr)
		if err != nil && line == "" {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	p1, err := read("Password: ")
	if err != nil {
		return "", err
	}
	p2, err := read("Password again: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("the two passwords differ")
	}
	return p1, nil
}

// noEcho turns terminal echo off and returns a function that restores it.
func noEcho(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("not a terminal: %w", err)
	}
	t := *old
	t.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, fmt.Errorf("turn echo off: %w", err)
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// openCommandStore opens the database of a one-shot command (user add,
// token add), creating the data directory first. On failure it says why
// on stderr and returns a nil store with the exit status.
func openCommandStore(ctx context.Context, cfg *config.Config, stderr io.Writer) (*store.Store, int) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		fmt.Fprintf(stderr, "sockmail: data directory: %v\n", err)
		return nil, 1
	}
	st, err := store.Open(ctx, cfg.DSN)
	if err != nil {
		fmt.Fprintf(stderr, "sockmail: %v\n", err)
		return nil, 1
	}
	return st, 0
}
