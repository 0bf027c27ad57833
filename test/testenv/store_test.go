package testenv

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fakeStore records what OpenStore does to it.
type fakeStore struct {
	migrated, closed int
	migrateErr       error
}

func (s *fakeStore) Migrate(context.Context) error { s.migrated++; return s.migrateErr }
func (s *fakeStore) Close() error                  { s.closed++; return nil }

func TestOpenStore(t *testing.T) {
	for _, tc := range []struct {
		name         string
		open         func(t testing.TB, s *fakeStore) *fakeStore
		wantMigrated int
	}{
		{"migrated", func(t testing.TB, s *fakeStore) *fakeStore {
			return OpenStore(t, func(context.Context) (*fakeStore, error) { return s, nil })
		}, 1},
		{"unmigrated", func(t testing.TB, s *fakeStore) *fakeStore {
			return OpenUnmigrated(t, func(context.Context) (*fakeStore, error) { return s, nil })
		}, 0},
	} {
		s := &fakeStore{}
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.open(t, s); got != s {
				t.Fatalf("returned %p, want the opened store %p", got, s)
			}
			if s.migrated != tc.wantMigrated || s.closed != 0 {
				t.Fatalf("before the test's end: migrated %d, closed %d; want %d, 0", s.migrated, s.closed, tc.wantMigrated)
			}
		})
		if s.closed != 1 {
			t.Errorf("%s: closed %d times when the test ended, want once", tc.name, s.closed)
		}
	}
}

// failTB records a fatal error instead of ending the goroutine.
type failTB struct {
	testing.TB
	msg string
}

func (f *failTB) Helper() {}
func (f *failTB) Fatalf(format string, args ...any) {
	f.msg = strings.TrimSpace(format)
	panic(f)
}

func TestOpenStoreFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    *fakeStore
		err  error
		want string
	}{
		{"open", nil, errors.New("no"), "open the store"},
		{"migrate", &fakeStore{migrateErr: errors.New("no")}, nil, "migrate the store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &failTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != f {
						t.Fatalf("recovered %v, want the fatal error", r)
					}
				}()
				OpenStore(f, func(context.Context) (*fakeStore, error) { return tc.s, tc.err })
			}()
			if !strings.HasPrefix(f.msg, tc.want) {
				t.Errorf("fatal %q, want %q", f.msg, tc.want)
			}
		})
	}
}
