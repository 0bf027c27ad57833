package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      string
		want    []domain.Scope
		wantErr string
	}{
		{"events:read", []domain.Scope{domain.ScopeRead}, ""},
		{"events:read,events:write", []domain.Scope{domain.ScopeRead, domain.ScopeWrite}, ""},
		{"events:write events:read", []domain.Scope{domain.ScopeWrite, domain.ScopeRead}, ""},
		{" admin ,, events:read ", []domain.Scope{domain.ScopeAdmin, domain.ScopeRead}, ""},
		{"admin,admin admin", []domain.Scope{domain.ScopeAdmin}, ""},
		{"", nil, ""},
		{" , ", nil, ""},
		{"events:read,events:delete", nil, `unknown scope "events:delete"`},
		{"Admin", nil, `unknown scope "Admin"`},
		{"events:*", nil, "unknown scope"},
	}
	for _, tt := range tests {
		got, err := domain.ParseScopes(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
				t.Errorf("ParseScopes(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseScopes(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

var (
	reader = domain.Principal{Name: "token:r", UserID: 1, Scopes: []domain.Scope{domain.ScopeRead}}
	writer = domain.Principal{Name: "token:w", UserID: 1, Scopes: []domain.Scope{domain.ScopeWrite}}
	both   = domain.Principal{Name: "token:rw", UserID: 1, Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}}
	admin  = domain.Principal{Name: "token:a", Scopes: []domain.Scope{domain.ScopeAdmin}}
	nobody = domain.Principal{Name: "token:n", UserID: 1}
	// anyW and anyRW act on any one user (a request without a credential
	// under the migration setting).
	anyW  = domain.Principal{Name: "anonymous:192.0.2.1", Scopes: []domain.Scope{domain.ScopeWrite}, AnyUser: true}
	anyRW = domain.Principal{Name: "anonymous:192.0.2.1", Scopes: []domain.Scope{domain.ScopeRead, domain.ScopeWrite}, AnyUser: true}
)

func TestPrincipalHasAndIsAdmin(t *testing.T) {
	tests := []struct {
		p                    domain.Principal
		read, write, isAdmin bool
	}{
		{reader, true, false, false},
		{writer, false, true, false},
		{both, true, true, false},
		{admin, true, true, true},
		{nobody, false, false, false},
		{anyRW, true, true, false},
	}
	for _, tt := range tests {
		if got := tt.p.Has(domain.ScopeRead); got != tt.read {
			t.Errorf("%s Has(read) = %v", tt.p.Name, got)
		}
		if got := tt.p.Has(domain.ScopeWrite); got != tt.write {
			t.Errorf("%s Has(write) = %v", tt.p.Name, got)
		}
		if got := tt.p.Has(domain.ScopeAdmin); got != tt.isAdmin {
			t.Errorf("%s Has(admin) = %v", tt.p.Name, got)
		}
		if got := tt.p.IsAdmin(); got != tt.isAdmin {
			t.Errorf("%s IsAdmin() = %v", tt.p.Name, got)
		}
	}
}

func TestPrincipalAuthorize(t *testing.T) {
	tests := []struct {
		name   string
		p      domain.Principal
		scope  domain.Scope
		user   int64
		ok     bool
		reason string
	}{
		{"read own", reader, domain.ScopeRead, 1, true, ""},
		{"write with read-only", reader, domain.ScopeWrite, 1, false, "lacks scope events:write"},
		{"read with write-only", writer, domain.ScopeRead, 1, false, "lacks scope events:read"},
		{"write own", both, domain.ScopeWrite, 1, true, ""},
		{"write other user", both, domain.ScopeWrite, 2, false, "acts for user 1 only"},
		{"read every user", both, domain.ScopeRead, 0, false, "only an admin may act across users"},
		{"no scopes", nobody, domain.ScopeRead, 1, false, "lacks scope"},
		{"admin scope as non-admin", both, domain.ScopeAdmin, 1, false, "lacks scope admin"},
		{"admin any user", admin, domain.ScopeWrite, 99, true, ""},
		{"admin every user", admin, domain.ScopeRead, 0, true, ""},
		{"admin admin", admin, domain.ScopeAdmin, 0, true, ""},
		{"any user writes any user", anyW, domain.ScopeWrite, 99, true, ""},
		{"any user reads any user", anyRW, domain.ScopeRead, 1 << 40, true, ""},
		{"any user lacks read", anyW, domain.ScopeRead, 99, false, "lacks scope events:read"},
		{"any user is no admin", anyRW, domain.ScopeAdmin, 99, false, "lacks scope admin"},
		{"any user not every user", anyRW, domain.ScopeRead, 0, false, "one user at a time; give user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Authorize(tt.scope, tt.user)
			if tt.ok {
				if err != nil {
					t.Fatalf("Authorize: %v", err)
				}
				return
			}
			if !errors.Is(err, domain.ErrForbidden) {
				t.Fatalf("Authorize = %v, want ErrForbidden", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Authorize = %q, want a reason containing %q", err, tt.reason)
			}
		})
	}
}

func TestTokenActiveAndPrincipal(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tok  domain.Token
		at   time.Time
		want bool
	}{
		{"never expires", domain.Token{}, t0.AddDate(100, 0, 0), true},
		{"before expiry", domain.Token{ExpiresAt: t0.Add(time.Hour)}, t0.Add(time.Hour - time.Nanosecond), true},
		{"at expiry", domain.Token{ExpiresAt: t0.Add(time.Hour)}, t0.Add(time.Hour), false},
		{"after expiry", domain.Token{ExpiresAt: t0.Add(time.Hour)}, t0.Add(2 * time.Hour), false},
		{"revoked", domain.Token{RevokedAt: t0}, t0.Add(-time.Hour), false},
		{"revoked and unexpired", domain.Token{RevokedAt: t0, ExpiresAt: t0.Add(time.Hour)}, t0, false},
	}
	for _, tt := range tests {
		if got := tt.tok.Active(tt.at); got != tt.want {
			t.Errorf("%s: Active = %v, want %v", tt.name, got, tt.want)
		}
	}
	tok := domain.Token{ID: "abc", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead}, Hash: []byte("h")}
	p := tok.Principal()
	if p.Name != "token:abc" || p.UserID != 7 || !slices.Equal(p.Scopes, tok.Scopes) {
		t.Errorf("Principal() = %+v", p)
	}
}

func TestPrincipalCredentialKind(t *testing.T) {
	tests := []struct {
		p    domain.Principal
		want domain.CredentialKind
	}{
		{domain.Principal{Name: "token:3f9a", Kind: domain.KindToken}, domain.KindToken},
		{domain.Principal{Name: "anonymous", Kind: domain.KindNone}, domain.KindNone},
		{domain.Principal{Name: "jwt:42"}, domain.KindJWT},
		{domain.Principal{Name: "anonymous:192.0.2.1", AnyUser: true}, domain.KindAnonymous},
		{domain.Principal{Name: "token:3f9a"}, domain.KindToken},
		{domain.Principal{Name: "import:activity-logger"}, domain.KindToken},
		{domain.Principal{Name: "jwtish"}, domain.KindToken},
	}
	for _, tt := range tests {
		if got := tt.p.CredentialKind(); got != tt.want {
			t.Errorf("%+v.CredentialKind() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestTokenPrincipalCarriesExpiry(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tok := range []domain.Token{
		{ID: "a", UserID: 7, Scopes: []domain.Scope{domain.ScopeRead}, ExpiresAt: exp},
		{ID: "b", Scopes: []domain.Scope{domain.ScopeAdmin}},
	} {
		p := tok.Principal()
		if !p.ExpiresAt.Equal(tok.ExpiresAt) || p.Kind != domain.KindToken || p.Name != "token:"+tok.ID || p.UserID != tok.UserID {
			t.Errorf("Token %s: Principal() = %+v, want expiry %v, kind token", tok.ID, p, tok.ExpiresAt)
		}
	}
}
