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
  activityd token import --user ID [--scope events:read,events:write] [--name NAME] [--ttl 720h] < secret
  activityd token import --file PATH|- [--ttl 720h]

create prints the new token alone on standard output; it is shown only once.

import stores secrets your clients already hold (a Django REST Framework
token, 40 hex characters), hashed, so that they keep working. A secret is
never taken from the command line: import reads one from standard input,
or with --file many, one a line, "SECRET USER_ID [SCOPES] [NAME]" (blank
lines and # comments skipped; --file - reads standard input). Scopes
default to events:read,events:write. A secret must be at least 16
characters, without whitespace. One already stored for the same user and
scopes is left as it is ("already present"); for another user it is
refused. When any line of a file is refused, nothing of it is imported.
`

// tokenCmd manages API tokens in the store DATABASE_URL names; import
// reads its secrets from standard input.
func tokenCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	return tokenCommand(ctx, cfg, args, os.Stdin, stdout, stderr)
}

// tokenCommand is tokenCmd with standard input stdin.
func tokenCommand(ctx context.Context, cfg config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("missing subcommand\n\n" + tokenUsage)}
	}
	sub, args := args[0], args[1:]
	run := func(f func(*app.Tokens) error) error {
		st, err := openStore(ctx, cfg, nil, cliStoreNote("token", stderr))
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
	case "import":
		return tokenImport(ctx, args, stdin, stdout, stderr, run)
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

// defaultImportScopes are the scopes of an imported secret that names
// none: what the activity-logger's clients did with theirs.
const defaultImportScopes = "events:read,events:write"

// maxSecretLine bounds a line of token import's input.
const maxSecretLine = 64 << 10

// tokenImport is "activityd token import": it parses the command line and
// the secrets (never from argv), and leaves the rules to app.Tokens.
func tokenImport(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, run func(func(*app.Tokens) error) error) error {
	fs := flag.NewFlagSet("token import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.Int64("user", 0, "the user id the secret read from standard input acts for")
	scope := fs.String("scope", defaultImportScopes, "comma-separated scopes: events:read, events:write, admin")
	name := fs.String("name", "imported", "a name to recognise the token by")
	ttl := fs.Duration("ttl", 0, "lifetime, e.g. 720h; 0 never expires")
	file := fs.String("file", "", "import many secrets, one a line (SECRET USER_ID [SCOPES] [NAME]), from this file; - is standard input")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		// Never echo it: it may be a secret typed where it does not belong.
		return usageError{errors.New("import takes no arguments: the secret is read from standard input, never from the command line")}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if *file != "" {
		for _, f := range []string{"user", "scope", "name"} {
			if set[f] {
				return usageError{fmt.Errorf("--%s and --file do not go together: each line names its user, scopes and name", f)}
			}
		}
		in := stdin
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return usageError{fmt.Errorf("--file: %w", err)}
			}
			defer f.Close()
			in = f
		}
		list, lines, err := readSecretLines(in, *ttl)
		if err != nil {
			return err
		}
		return run(func(ts *app.Tokens) error {
			sum, err := ts.ImportAll(ctx, list)
			var ie *app.ImportError
			if errors.As(err, &ie) {
				msgs := make([]string, len(ie.Problems))
				for i, p := range ie.Problems {
					msgs[i] = fmt.Sprintf("line %d: %v", lines[p.Index], p.Err)
				}
				return usageError{fmt.Errorf("nothing imported: %d line(s) refused:\n%s", len(msgs), strings.Join(msgs, "\n"))}
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "imported %d, already present %d\n", sum.Imported, sum.Present)
			return err
		})
	}

	if !set["user"] {
		return usageError{errors.New("import needs --user (or --file)")}
	}
	scopes, err := domain.ParseScopes(*scope)
	if err != nil {
		return usageError{fmt.Errorf("--scope: %w", err)}
	}
	secret, err := readOneSecret(stdin)
	if err != nil {
		return err
	}
	spec := app.TokenSpec{Name: *name, UserID: *user, Scopes: scopes, TTL: *ttl}
	return run(func(ts *app.Tokens) error {
		t, created, err := ts.Import(ctx, spec, secret)
		var ve *domain.ValidationError
		if errors.As(err, &ve) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		n, m := 1, 0
		if !created {
			n, m = 0, 1
		}
		_, err = fmt.Fprintf(stdout, "imported %d, already present %d (token %s, user %d)\n", n, m, t.ID, t.UserID)
		return err
	})
}

// readOneSecret reads the one secret of standard input: its one line,
// without surrounding whitespace.
func readOneSecret(in io.Reader) (string, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), maxSecretLine)
	var secret string
	for n := 0; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case n == 0:
			secret = line
		case line != "":
			return "", usageError{errors.New("standard input holds more than one line: import reads one secret (use --file - for many)")}
		}
	}
	if err := sc.Err(); err != nil {
		return "", usageError{fmt.Errorf("read the secret from standard input: %w", err)}
	}
	if secret == "" {
		return "", usageError{errors.New("no secret on standard input: pipe it in, e.g. import --user 6 < secret.txt")}
	}
	return secret, nil
}

// readSecretLines parses token import's file: one "SECRET USER_ID
// [SCOPES] [NAME]" a line, blank lines and # comments skipped. It returns
// the secrets with the line each came from, or every malformed line's
// problem (never its secret).
func readSecretLines(in io.Reader, ttl time.Duration) (list []app.SecretImport, lines []int, err error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), maxSecretLine)
	var problems []string
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 {
			problems = append(problems, fmt.Sprintf("line %d: want SECRET USER_ID [SCOPES] [NAME], got one field", n))
			continue
		}
		user, ok := domain.ParseUserID(f[1])
		if !ok {
			problems = append(problems, fmt.Sprintf("line %d: USER_ID (the second field) must be a positive integer", n))
			continue
		}
		scopeText := defaultImportScopes
		if len(f) > 2 {
			scopeText = f[2]
		}
		scopes, err := domain.ParseScopes(scopeText)
		if err != nil || len(scopes) == 0 {
			problems = append(problems, fmt.Sprintf("line %d: SCOPES (the third field) must be a comma-separated list of events:read, events:write, admin", n))
			continue
		}
		name := strings.Join(f[min(3, len(f)):], " ")
		if name == "" {
			name = "imported"
		}
		list = append(list, app.SecretImport{Secret: f[0], Spec: app.TokenSpec{Name: name, UserID: user, Scopes: scopes, TTL: ttl}})
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, usageError{fmt.Errorf("read the secrets: %w", err)}
	}
	if len(problems) > 0 {
		return nil, nil, usageError{fmt.Errorf("nothing imported: %d line(s) refused:\n%s", len(problems), strings.Join(problems, "\n"))}
	}
	if len(list) == 0 {
		return nil, nil, usageError{errors.New("no secret to import: every line is blank or a comment")}
	}
	return list, lines, nil
}
