package domain_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
)

func TestNewVocabulary(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []domain.Action // nil when an error is expected
		wantErr string
	}{
		{"normalised and sorted", []string{"Viewed", " login ", "UPLOAD_FILE"}, []domain.Action{"login", "upload_file", "viewed"}, ""},
		{"duplicates collapse", []string{"login", "LOGIN", "login"}, []domain.Action{"login"}, ""},
		{"punctuation", []string{"page.view", "a:b-c"}, []domain.Action{"a:b-c", "page.view"}, ""},
		{"empty", nil, nil, "empty vocabulary"},
		{"ill-formed", []string{"login", "log in"}, nil, `action "log in"`},
		{"star is not an action", []string{"*"}, nil, `action "*"`},
		{"blank", []string{"  "}, nil, "must match"},
		{"too long", []string{"a" + strings.Repeat("b", 64)}, nil, "must match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := domain.NewVocabulary(tt.in...)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewVocabulary(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewVocabulary(%q): %v", tt.in, err)
			}
			if v.Any() {
				t.Error("an explicit vocabulary accepts any action")
			}
			if got := v.Actions(); !slices.Equal(got, tt.want) {
				t.Errorf("Actions() = %v, want %v", got, tt.want)
			}
			for _, a := range tt.want {
				if got, err := v.ParseAction("action", strings.ToUpper(string(a))); err != nil || got != a {
					t.Errorf("ParseAction(%q) = %q, %v", strings.ToUpper(string(a)), got, err)
				}
			}
		})
	}
	v, _ := domain.NewVocabulary("login")
	if _, err := v.ParseAction("action", "logout"); err == nil {
		t.Error("a vocabulary of login accepted logout")
	}
}

func TestDefaultAndAnyVocabulary(t *testing.T) {
	def := domain.DefaultVocabulary()
	want := slices.Clone(domain.DefaultActions)
	slices.Sort(want)
	if got := def.Actions(); !slices.Equal(got, want) {
		t.Errorf("DefaultVocabulary().Actions() = %v, want %v", got, want)
	}
	for _, a := range []string{"login", "logout", "upload_file", "created", "updated", "deleted", "viewed"} {
		if _, err := def.ParseAction("action", a); err != nil {
			t.Errorf("default vocabulary rejects %q: %v", a, err)
		}
	}
	anyV := domain.AnyAction()
	if !anyV.Any() || anyV.Actions() != nil {
		t.Errorf("AnyAction: Any() = %v, Actions() = %v", anyV.Any(), anyV.Actions())
	}
	if !(domain.Vocabulary{}).Any() {
		t.Error("the zero Vocabulary should accept any action")
	}
	if got, err := anyV.ParseAction("x", "Some.New:Action-1"); err != nil || got != "some.new:action-1" {
		t.Errorf("AnyAction().ParseAction = %q, %v", got, err)
	}
	_, err := anyV.ParseAction("events[2].action", "")
	assertFields(t, err, field{"events[2].action", "is required"})
}
