package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/activityd/activityd/domain"
)

// leafSize is one encoded leaf: user id, position, count, link.
const leafSize = 8 + 8 + 8 + 32

// EncodeLeaves packs a checkpoint's leaves for a SQL store's blob column:
// 56 bytes each, integers big-endian.
func EncodeLeaves(hs []domain.ChainHead) []byte {
	b := make([]byte, 0, len(hs)*leafSize)
	for _, h := range hs {
		b = binary.BigEndian.AppendUint64(b, uint64(h.UserID))
		b = binary.BigEndian.AppendUint64(b, uint64(h.Position))
		b = binary.BigEndian.AppendUint64(b, uint64(h.Count))
		b = append(b, h.Link[:]...)
	}
	return b
}

// DecodeLeaves unpacks EncodeLeaves.
func DecodeLeaves(b []byte) ([]domain.ChainHead, error) {
	if len(b)%leafSize != 0 {
		return nil, fmt.Errorf("checkpoint leaves: %d bytes is not a whole number of leaves", len(b))
	}
	out := make([]domain.ChainHead, 0, len(b)/leafSize)
	for ; len(b) > 0; b = b[leafSize:] {
		h := domain.ChainHead{
			UserID:   int64(binary.BigEndian.Uint64(b)),
			Position: int64(binary.BigEndian.Uint64(b[8:])),
			Count:    int64(binary.BigEndian.Uint64(b[16:])),
		}
		copy(h.Link[:], b[24:leafSize])
		out = append(out, h)
	}
	return out, nil
}
