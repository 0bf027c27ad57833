package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/activityd/activityd/adapters/checkpoint"
	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// errBroken: verification found a broken chain (exit status 1, after the
// report).
var errBroken = errors.New("the history does not verify")

const checkpointUsage = `usage: activityd checkpoint

Signs a checkpoint now over every user's chain head in the store
DATABASE_URL names, with the checkpoint key (CHECKPOINT_KEY, or the file
CHECKPOINT_KEY_FILE, made on first use), stores it and writes it to
CHECKPOINT_SINKS, as POST /v1/checkpoints does. Prints it as JSON.
`

func checkpointCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, checkpointUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("no arguments\n\n%s", checkpointUsage)}
	}
	p, err := startProcess(ctx, cfg, "activityd-checkpoint", log, cliStoreNote("checkpoint", stderr))
	if err != nil {
		return err
	}
	defer p.close()
	ev, err := p.newEvidence(ctx)
	if err != nil {
		return err
	}
	sg, err := ev.Checkpoint(ctx)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(sg, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	if len(sg.Failed) > 0 {
		return fmt.Errorf("checkpoint %d signed and stored, but not written to %d sink(s)", sg.Checkpoint.Position, len(sg.Failed))
	}
	return nil
}

const verifyUsage = `usage: activityd verify [--user ID] [--checkpoint FILE] [--key FILE] [--progress=auto|on|off]

Recomputes the hash chains of every user (or one) in the store DATABASE_URL
names and checks them against a checkpoint: FILE (a checkpoint file of a
dir: sink, kept where the database's administrators cannot change it), or
else the newest in CHECKPOINT_SINKS' first directory, or else the newest
stored in the database. The checkpoint must verify with --key (a public key
in PEM, or base64) or else this service's checkpoint key; one signed with
another key is refused.

Prints the result as JSON ({"ok", "checked", "first_broken", ...}); exits 0
when the history verifies, 1 when it does not, 2 on a usage error.
`

type verifyOptions struct {
	user       int64
	checkpoint string
	key        string
	progress   string
}

func verifyCmd(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage) }
	var o verifyOptions
	user := fs.String("user", "", "user id (default: every user)")
	fs.StringVar(&o.checkpoint, "checkpoint", "", "a checkpoint file")
	fs.StringVar(&o.key, "key", "", "the public key checkpoints verify with (PEM file or base64)")
	fs.StringVar(&o.progress, "progress", "auto", "auto, on or off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), verifyUsage)}
	}
	if *user != "" {
		n, ok := domain.ParseUserID(*user)
		if !ok {
			return usageError{errors.New("--user: must be a positive integer")}
		}
		o.user = n
	}
	if o.progress != "auto" && o.progress != "on" && o.progress != "off" {
		return usageError{fmt.Errorf("--progress=%s: auto, on or off", o.progress)}
	}
	var vo app.VerifyOptions
	vo.UserID = o.user
	if o.key != "" {
		k, err := readPublicKey(o.key)
		if err != nil {
			return usageError{fmt.Errorf("--key: %w", err)}
		}
		vo.Key = k
	}
	if o.checkpoint != "" {
		c, leaves, err := checkpoint.Read(o.checkpoint)
		if err != nil {
			return usageError{fmt.Errorf("--checkpoint: %w", err)}
		}
		vo.Checkpoint, vo.Leaves = &c, leaves
	}
	// verify signs nothing: it never makes a key or a directory. Without
	// a key file here (an auditor's machine), --key is the one to trust.
	if cfg.CheckpointKey == "" {
		if _, err := os.Stat(cfg.CheckpointKeyFile); errors.Is(err, os.ErrNotExist) {
			if vo.Key == nil {
				return usageError{fmt.Errorf("no checkpoint key here (%s does not exist): give --key with the service's public key", cfg.CheckpointKeyFile)}
			}
			seed := make([]byte, ed25519.SeedSize)
			if _, err := rand.Read(seed); err != nil {
				return err
			}
			cfg.CheckpointKey = base64.StdEncoding.EncodeToString(seed) // signs nothing; never stored
		}
	}
	var dirs []string
	for _, s := range cfg.CheckpointSinks {
		if dir, ok := strings.CutPrefix(s, "dir:"); ok {
			if _, err := os.Stat(dir); err == nil {
				dirs = append(dirs, s)
			}
		}
	}
	cfg.CheckpointSinks = dirs
	p, err := startProcess(ctx, cfg, "activityd-verify", log, cliStoreNote("verify", stderr))
	if err != nil {
		return err
	}
	defer p.close()
	if vo.Checkpoint == nil {
		for _, s := range cfg.CheckpointSinks {
			if dir, ok := strings.CutPrefix(s, "dir:"); ok {
				if _, err := os.Stat(dir); err != nil {
					break
				}
				d, err := checkpoint.NewDir(dir)
				if err != nil {
					return err
				}
				c, leaves, err := d.Latest(ctx)
				if errors.Is(err, domain.ErrNotFound) {
					break
				}
				if err != nil {
					return fmt.Errorf("the newest checkpoint of %s: %w", s, err)
				}
				vo.Checkpoint, vo.Leaves = &c, leaves
				break
			}
		}
	}
	ev, err := p.newEvidence(ctx)
	if err != nil {
		return err
	}
	if o.progress == "on" || (o.progress == "auto" && isTerminal(stderr)) {
		began, shown := time.Now(), time.Time{}
		head, _ := p.store.FeedHead(ctx)
		vo.Progress = func(checked, pos int64) {
			now := time.Now()
			if now.Sub(shown) < 200*time.Millisecond {
				return
			}
			shown = now
			pct := 100.0
			if head > 0 && o.user == 0 {
				pct = 100 * float64(pos) / float64(head)
			}
			fmt.Fprintf(stderr, "\r%s %5.1f%%  %d changes verified (%.0f/s)\033[K", bar(pct, 30), pct, checked, rate(int(checked), now.Sub(began)))
		}
		defer fmt.Fprint(stderr, "\r\033[K")
	}
	res, err := ev.Verify(ctx, vo)
	if err != nil {
		if errors.Is(err, domain.ErrBadSignature) || errors.Is(err, app.ErrCheckpointLeaves) {
			return usageError{fmt.Errorf("the checkpoint is refused: %w", err)}
		}
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	if !res.OK {
		return errBroken
	}
	return nil
}

// bar draws pct as a bar of width cells.
func bar(pct float64, width int) string {
	n := int(pct / 100 * float64(width))
	n = max(0, min(n, width))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// readPublicKey reads a public key: a PEM file, or the key itself (PEM or
// base64, as /.well-known/activityd/checkpoint-key gives it).
func readPublicKey(v string) (ed25519.PublicKey, error) {
	if b, err := os.ReadFile(v); err == nil {
		v = string(b)
	}
	return checkpoint.ParsePublicKey(v)
}

const verifyProofUsage = `usage: activityd verify-proof --key KEY [PROOF.json]

Checks an inclusion proof (GET /v1/events/{id}/proof), read from the file
or standard input, offline: the entry's link folds to the user's head, the
head's leaf and audit path give the checkpoint's root, and the checkpoint
is signed by KEY (a PEM file, or the key in PEM or base64, as
/.well-known/activityd/checkpoint-key publishes it: pin your copy). With
--metadata, also checks that this metadata (as the event's JSON gives it,
compact) is what the entry covers. Needs no database; exits 0 when the
proof holds, 1 when it does not.
`

func verifyProofCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify-proof", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyProofUsage) }
	key := fs.String("key", "", "the checkpoint public key")
	metadata := fs.String("metadata", "", "the event's metadata, compact JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *key == "" || fs.NArg() > 1 {
		fmt.Fprint(stderr, "activityd verify-proof: --key is required, and at most one file\n\n"+verifyProofUsage)
		return 2
	}
	pub, err := readPublicKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "activityd verify-proof: --key: %v\n", err)
		return 2
	}
	in := stdin
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "activityd verify-proof: %v\n", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	var pr domain.Proof
	dec := json.NewDecoder(io.LimitReader(in, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pr); err != nil {
		fmt.Fprintf(stderr, "activityd verify-proof: not a proof: %v\n", err)
		return 2
	}
	if err := pr.Verify(pub); err != nil {
		fmt.Fprintf(stdout, "proof does NOT verify: %v\n", err)
		return 1
	}
	if *metadata != "" {
		md, err := domain.CanonicalObject([]byte(*metadata))
		if err != nil {
			fmt.Fprintf(stderr, "activityd verify-proof: --metadata: %v\n", err)
			return 2
		}
		if domain.MetadataDigest(md) != pr.Entry.Digest {
			fmt.Fprintf(stdout, "proof verifies, but the metadata given is NOT what the entry covers\n")
			return 1
		}
	}
	fmt.Fprintf(stdout, "proof verifies: event %s of user %d (%s, position %d) is in the chain the checkpoint at position %d signed (%s, key %s)\n",
		pr.Entry.EventID, pr.Entry.UserID, pr.Entry.Action, pr.Entry.Position, pr.Checkpoint.Position,
		pr.Checkpoint.At.UTC().Format(time.RFC3339), pr.Checkpoint.KeyID)
	return 0
}
