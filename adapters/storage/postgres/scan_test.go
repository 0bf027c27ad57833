package postgres

import (
	"testing"
	"time"

	"github.com/activityd/activityd/domain"
)

func TestParseUUID(t *testing.T) {
	for range 200 {
		id := domain.NewID(time.Now())
		got, ok := parseUUID([]byte(id.String()))
		if !ok || got != id {
			t.Fatalf("parseUUID(%s) = %s, %v", id, got, ok)
		}
	}
	if got, ok := parseUUID([]byte("0190A8F0-8A5B-7C3E-9F1A-2B3C4D5E6F70")); !ok || got.String() != "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f70" {
		t.Errorf("upper case: %s, %v", got, ok)
	}
	for _, bad := range []string{"", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7", "0190a8f0x8a5b-7c3e-9f1a-2b3c4d5e6f70", "0190a8f0-8a5b-7c3e-9f1a-2b3c4d5e6f7g", "0190a8f08a5b7c3e9f1a2b3c4d5e6f70abcd"} {
		if _, ok := parseUUID([]byte(bad)); ok {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

func TestInternedScanners(t *testing.T) {
	var a domain.Action
	for _, v := range []string{"login", "viewed", "custom.thing"} {
		if err := (actionScanner{&a}).Scan([]byte(v)); err != nil || string(a) != v {
			t.Errorf("action %q: %q, %v", v, a, err)
		}
	}
	var st domain.Status
	for _, v := range []string{"PENDING", "IN_PROGRESS", "DONE"} {
		if err := (statusScanner{&st}).Scan([]byte(v)); err != nil || string(st) != v {
			t.Errorf("status %q: %q, %v", v, st, err)
		}
	}
	// A shared string must not alias the driver's buffer.
	buf := []byte("custom.thing")
	_ = (actionScanner{&a}).Scan(buf)
	buf[0] = 'X'
	if a != "custom.thing" {
		t.Errorf("action aliases the driver's buffer: %q", a)
	}
}
