package storage

import (
	"fmt"

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
	}
	return "", fmt.Errorf("unknown change kind %d", code)
}
