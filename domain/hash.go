package domain

import (
	"crypto/sha256"
	"strconv"
)

const idempotencyNamespace = "activityd/idempotency-key/v1"

func sha256Sum(ns string, userID int64, key string) [32]byte {
	h := sha256.New()
	h.Write([]byte(ns))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(userID, 10)))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
