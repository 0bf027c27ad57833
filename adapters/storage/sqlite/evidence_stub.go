package sqlite

import (
	"context"
	"errors"

	"github.com/activityd/activityd/domain"
)

var errTODO = errors.New("evidence: not yet")

func (s *Store) ChainRecords(context.Context, domain.ChangeFilter) ([]domain.ChainRecord, error) { return nil, errTODO }
func (s *Store) ChainHeads(context.Context) (int64, []domain.ChainHead, error)                 { return 0, nil, errTODO }
func (s *Store) SaveCheckpoint(context.Context, domain.Checkpoint, []domain.ChainHead) error     { return errTODO }
func (s *Store) Checkpoints(context.Context, int64, int) ([]domain.Checkpoint, error)            { return nil, errTODO }
func (s *Store) CheckpointLeaves(context.Context, int64) ([]domain.ChainHead, error)             { return nil, errTODO }
