package domain

import "time"

// UserCount is how many events one user recorded in a time window, in total
// and per action.
type UserCount struct {
	UserID   int64
	Total    int64
	ByAction map[Action]int64
}

// WindowCount is a UserCount for the window [Start, End).
type WindowCount struct {
	UserCount
	Start, End time.Time
}
