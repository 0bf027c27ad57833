package storage

import (
	"github.com/activityd/activityd/domain"
	"github.com/activityd/activityd/ports"
)

// CreateGroup is a store's group commit of Creates.
type CreateGroup = Group[CreateReq, CreateRes]

// CreateReq is a Create queued in a store's group commit (Group): the event
// and who records it.
type CreateReq struct {
	Event domain.Event
	By    string
}

// CreateRes is a Create's answer from a group commit: the event stored or
// found, and whether this request created it, or the error of this one
// request.
type CreateRes struct {
	Event   domain.Event
	Created bool
	Err     error
}

// GroupEvents returns the events of a group of Creates, and by(i), who
// records the i-th: the arguments of a store's write of many events.
func GroupEvents(calls []Call[CreateReq]) (es []domain.Event, by func(i int) string) {
	es = make([]domain.Event, len(calls))
	for i, c := range calls {
		es[i] = c.Req.Event
	}
	return es, func(i int) string { return calls[i].Req.By }
}

// SettleCreates answers a group of Creates that one shared write stored
// (out, one per call) or failed (err). A failure the whole group shares
// (shared(err): the database cannot serve now, the group's deadline
// passed) is every request's; after any other, each request is stored
// again alone, so that one event the database refused fails by itself.
func SettleCreates(calls []Call[CreateReq], out []ports.Created, err error, shared func(error) bool, alone func(Call[CreateReq]) CreateRes) []CreateRes {
	res := make([]CreateRes, len(calls))
	switch {
	case err == nil:
		for i, c := range out {
			res[i] = CreateRes{Event: c.Event, Created: c.Created}
		}
	case shared(err):
		for i := range res {
			res[i].Err = err
		}
	default:
		for i, c := range calls {
			res[i] = alone(c)
		}
	}
	return res
}
