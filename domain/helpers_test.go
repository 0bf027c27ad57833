package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/activityd/activityd/domain"
)

// field is an expected FieldError: the field name and a substring of its
// message ("" matches any message).
type field struct {
	name, msg string
}

// assertFields checks that err is a *ValidationError matching ErrInvalid
// whose fields are exactly want, in order.
func assertFields(t *testing.T, err error, want ...field) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want fields %v", want)
	}
	if !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T %v is not a *ValidationError", err, err)
	}
	if len(ve.Fields) != len(want) {
		t.Fatalf("fields = %+v, want %d: %v", ve.Fields, len(want), want)
	}
	for i, w := range want {
		got := ve.Fields[i]
		if got.Field != w.name || !strings.Contains(got.Message, w.msg) {
			t.Errorf("field %d = {%q, %q}, want {%q, containing %q}", i, got.Field, got.Message, w.name, w.msg)
		}
		if got.Message == "" {
			t.Errorf("field %q has no message", got.Field)
		}
	}
}
