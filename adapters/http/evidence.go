package httpapi

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/activityd/activityd/app"
	"github.com/activityd/activityd/domain"
)

// CheckpointKeyPath is where the checkpoint key is published, without
// authentication: anyone holding a checkpoint or a proof verifies it
// with this key, and should pin it (keep a copy) rather than fetch it
// from the service whose history it vouches for.
const CheckpointKeyPath = "/.well-known/activityd/checkpoint-key"

// checkpointKey is GET /.well-known/activityd/checkpoint-key.
func (s *Server) checkpointKey(w http.ResponseWriter, r *http.Request) {
	pub := s.evidence.PublicKey()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	s.writeJSON(w, r, http.StatusOK, map[string]string{
		"algorithm":  "Ed25519",
		"key_id":     domain.CheckpointKeyID(pub),
		"public_key": base64.StdEncoding.EncodeToString(pub),
		"pem":        string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	})
}

// listCheckpoints is GET /v1/checkpoints.
func (s *Server) listCheckpoints(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r, []string{"before", "limit"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cs, err := s.evidence.List(r.Context(), principalFrom(r.Context()), q.Get("before"), q.Get("limit"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Items  []domain.Checkpoint `json:"items"`
		Before *int64              `json:"next_before"`
	}{Items: cs}
	// next_before is null on the last page, as next_cursor is on the
	// event lists: a client pages until it is, with no empty last request.
	if len(cs) > 0 {
		last := cs[len(cs)-1].Position
		older, err := s.evidence.Checkpoints(r.Context(), last, 1)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if last > 0 && len(older) > 0 {
			out.Before = &last
		}
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// signCheckpoint is POST /v1/checkpoints: a checkpoint now (admin).
func (s *Server) signCheckpoint(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.noBody(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	sg, err := s.evidence.SignNow(r.Context(), principalFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if sg.New {
		status = http.StatusCreated
	}
	s.writeJSON(w, r, status, sg)
}

// userIntegrity is GET /v1/users/{user_id}/integrity.
func (s *Server) userIntegrity(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	user, err := pathUser(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.evidence.Integrity(r.Context(), principalFrom(r.Context()), user)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, res)
}

// eventProof is GET /v1/events/{id}/proof.
func (s *Server) eventProof(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r, []string{"checkpoint"})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.evidence.ProofOf(r.Context(), principalFrom(r.Context()), chi.URLParam(r, "id"), q.Get("checkpoint"))
	if errors.Is(err, app.ErrNotCheckpointed) {
		s.writeProblem(w, r, newProblem(http.StatusConflict, slugNotCheckpointed,
			"no checkpoint covers this event yet: ask again after the next one (GET /v1/checkpoints), or have an admin POST /v1/checkpoints"), http.StatusConflict)
		return
	}
	if errors.Is(err, app.ErrPrunedAfter) {
		s.writeProblem(w, r, newProblem(http.StatusConflict, slugNotProvable,
			"retention removed a later change of this user, whose entry the proof would need; GET /v1/users/{id}/integrity still verifies the chain"), http.StatusConflict)
		return
	}
	if errors.Is(err, app.ErrChainBroken) {
		s.log.WarnContext(r.Context(), "proof refused: the history does not verify", "err", err)
		s.writeProblem(w, r, newProblem(http.StatusConflict, slugChainBroken,
			"the stored history no longer verifies against the checkpoint, so no proof can be made; GET /v1/users/{id}/integrity names the first broken link"), http.StatusConflict)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, p)
}

// noBody accepts a request that says nothing: no body, or an empty JSON
// object. Anything else is refused, as on every /v1 route, rather than
// silently ignored.
func (s *Server) noBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	body, done, err := s.readBody(w, r)
	if err == errEmptyBody {
		return nil
	}
	if err != nil {
		return err
	}
	defer done()
	fe := &fieldErrors{}
	if k := jsonKind(body); k != "an object" {
		fe.add("(body)", codeWrongType, "must be an empty JSON object or absent, not %s", k)
	} else {
		ms, _ := members(body, "", fe)
		for _, m := range ms {
			fe.add(fieldName("", m.name), codeUnknownField, "is not a known field (this request takes none)")
		}
	}
	return fe.err("the request body is not valid")
}
