package storage

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/activityd/activityd/domain"
)

// The change feed's kinds as the SQL stores keep them: small integers, so
// that a change row stays a few dozen bytes. Numbers are never reused.
const (
	KindRecorded = 1 // domain.ChangeRecorded
	KindStatus   = 2 // domain.ChangeStatus
)

// ChangeKind returns the kind stored as code.
func ChangeKind(code int) (domain.ChangeKind, error) {
	switch code {
	case KindRecorded:
		return domain.ChangeRecorded, nil
	case KindStatus:
		return domain.ChangeStatus, nil
	case KindErased:
		return domain.ChangeErased, nil
	}
	return "", fmt.Errorf("unknown change kind %d", code)
}

// KindErased is domain.ChangeErased; its row has no event (the zero UUID)
// and the erasure in its detail (ErasureDetail).
const KindErased = 3

// erasureDetail is a KindErased row's detail, as JSON.
type erasureDetail struct {
	From  *time.Time `json:"from,omitempty"`
	To    *time.Time `json:"to,omitempty"`
	By    string     `json:"by"`
	Count int64      `json:"count"`
}

// ErasureDetail is the detail column of e's change row.
func ErasureDetail(e domain.Erasure) string {
	d := erasureDetail{By: e.By, Count: e.Count}
	if !e.From.IsZero() {
		d.From = &e.From
	}
	if !e.To.IsZero() {
		d.To = &e.To
	}
	b, _ := json.Marshal(d) // times and strings: cannot fail
	return string(b)
}

// ParseErasure reads a KindErased row: its user, time and detail.
func ParseErasure(user int64, at time.Time, detail []byte) (*domain.Erasure, error) {
	var d erasureDetail
	if err := json.Unmarshal(detail, &d); err != nil {
		return nil, fmt.Errorf("erasure change detail: %w", err)
	}
	e := &domain.Erasure{UserID: user, At: at, By: d.By, Count: d.Count}
	if d.From != nil {
		e.From = d.From.UTC()
	}
	if d.To != nil {
		e.To = d.To.UTC()
	}
	return e, nil
}
