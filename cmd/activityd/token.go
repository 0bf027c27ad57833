package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

const tokenUsage = `usage:
  activityd token create --user ID --scope events:read,events:write [--name NAME] [--ttl 720h]
  activityd token create --admin [--user ID] [--name NAME] [--ttl 720h]
  activityd token list
  activityd token revoke ID

create prints the new token alone on standard output; it is shown only once.
`

// tokenCmd manages API tokens in the store DATABASE_URL names.
func tokenCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("missing subcommand\n\n" + tokenUsage)}
	}
	sub, args := args[0], args[1:]
	run := func(f func(*app.Tokens) error) error {
		st, err := openStore(ctx, cfg, nil)
		if err != nil {
			return err
		}
		defer st.Close()
		return f(app.NewTokens(st, ports.SystemClock))
	}
	switch sub {
	case "create":
		fs := flag.NewFlagSet("token create", flag.ContinueOnError)
		fs.SetOutput(stderr)
		user := fs.Int64("user", 0, "the user id the token acts for")
		scope := fs.String("scope", "", "comma-separated scopes: events:read, events:write, admin")
		admin := fs.Bool("admin", false, "grant the admin scope (all users, all operations)")
		name := fs.String("name", "", "a name to recognise the token by")
		ttl := fs.Duration("ttl", 0, "lifetime, e.g. 720h; 0 never expires")
		if err := fs.Parse(args); err != nil {
			return usageError{err}
		}
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
		}
		scopes, err := domain.ParseScopes(*scope)
		if err != nil {
			return usageError{fmt.Errorf("--scope: %w", err)}
		}
		if *admin {
			scopes = append(scopes, domain.ScopeAdmin)
		}
		spec := app.TokenSpec{Name: *name, UserID: *user, Scopes: scopes, TTL: *ttl}
		return run(func(ts *app.Tokens) error {
			secret, _, err := ts.Create(ctx, spec)
			var ve *domain.ValidationError
			if errors.As(err, &ve) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, secret)
			return err
		})
	case "list":
		if len(args) > 0 {
			return usageError{fmt.Errorf("list takes no arguments")}
		}
		return run(func(ts *app.Tokens) error {
			list, err := ts.List(ctx)
			if err != nil {
				return err
			}
			return printTokens(stdout, list, time.Now())
		})
	case "revoke":
		if len(args) != 1 {
			return usageError{errors.New("revoke takes exactly one token id (see activityd token list)")}
		}
		return run(func(ts *app.Tokens) error {
			err := ts.Revoke(ctx, args[0])
			if errors.Is(err, domain.ErrNotFound) {
				return usageError{fmt.Errorf("no token with id %q", args[0])}
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "revoked %s\n", args[0])
			return err
		})
	case "-h", "--help", "help":
		_, err := fmt.Fprint(stdout, tokenUsage)
		return err
	}
	return usageError{fmt.Errorf("unknown subcommand %q\n\n%s", sub, tokenUsage)}
}

// printTokens writes the token table: never a secret or a hash.
func printTokens(w io.Writer, list []domain.Token, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tUSER\tSCOPES\tCREATED\tEXPIRES\tSTATE")
	for _, t := range list {
		scopes := make([]string, len(t.Scopes))
		for i, s := range t.Scopes {
			scopes[i] = string(s)
		}
		user, expires, state := "-", "never", "active"
		if t.UserID != 0 {
			user = fmt.Sprint(t.UserID)
		}
		if !t.ExpiresAt.IsZero() {
			expires = domain.FormatTime(t.ExpiresAt)
		}
		switch {
		case !t.RevokedAt.IsZero():
			state = "revoked " + domain.FormatTime(t.RevokedAt)
		case !t.Active(now):
			state = "expired"
		}
		name := t.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, name, user, strings.Join(scopes, ","), domain.FormatTime(t.CreatedAt), expires, state)
	}
	return tw.Flush()
}
