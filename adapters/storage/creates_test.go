package storage_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// createCalls returns a group of n Creates, the i-th of user i+1 by "by<i>".
func createCalls(n int) []storage.Call[storage.CreateReq] {
	calls := make([]storage.Call[storage.CreateReq], n)
	for i := range calls {
		calls[i].Req = storage.CreateReq{Event: domain.Event{UserID: int64(i + 1)}, By: "by" + string(rune('0'+i))}
	}
	return calls
}

func TestGroupEvents(t *testing.T) {
	es, by := storage.GroupEvents(createCalls(3))
	for i, e := range es {
		if e.UserID != int64(i+1) || by(i) != "by"+string(rune('0'+i)) {
			t.Errorf("event %d: user %d by %q", i, e.UserID, by(i))
		}
	}
	if len(es) != 3 {
		t.Errorf("%d events for 3 calls", len(es))
	}
}

func TestSettleCreates(t *testing.T) {
	calls := createCalls(3)
	out := make([]ports.Created, len(calls))
	for i, c := range calls {
		out[i] = ports.Created{Event: c.Req.Event, Created: i != 1}
	}
	errWrite := errors.New("write failed")
	var alone []int64 // users stored alone, in order
	storeAlone := func(c storage.Call[storage.CreateReq]) storage.CreateRes {
		alone = append(alone, c.Req.Event.UserID)
		if c.Req.Event.UserID == 2 {
			return storage.CreateRes{Err: errWrite}
		}
		return storage.CreateRes{Event: c.Req.Event, Created: true}
	}
	for _, tc := range []struct {
		name      string
		out       []ports.Created
		err       error
		shared    bool
		wantAlone []int64
		want      func(i int) storage.CreateRes
	}{
		{"stored", out, nil, false, nil, func(i int) storage.CreateRes {
			return storage.CreateRes{Event: out[i].Event, Created: out[i].Created}
		}},
		{"a failure the group shares", nil, errWrite, true, nil, func(int) storage.CreateRes {
			return storage.CreateRes{Err: errWrite}
		}},
		{"one refused", nil, errWrite, false, []int64{1, 2, 3}, func(i int) storage.CreateRes {
			if i == 1 {
				return storage.CreateRes{Err: errWrite}
			}
			return storage.CreateRes{Event: calls[i].Req.Event, Created: true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alone = nil
			shared := func(err error) bool {
				if err == nil {
					t.Error("shared(nil) asked")
				}
				return tc.shared
			}
			res := storage.SettleCreates(calls, tc.out, tc.err, shared, storeAlone)
			if len(res) != len(calls) {
				t.Fatalf("%d answers for %d calls", len(res), len(calls))
			}
			for i, r := range res {
				if w := tc.want(i); r.Event.UserID != w.Event.UserID || r.Created != w.Created || !errors.Is(r.Err, w.Err) || (w.Err == nil) != (r.Err == nil) {
					t.Errorf("answer %d: %+v, want %+v", i, r, w)
				}
			}
			if !slices.Equal(alone, tc.wantAlone) {
				t.Errorf("stored alone: users %v, want %v", alone, tc.wantAlone)
			}
		})
	}
}
