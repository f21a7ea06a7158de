package ccsandbox

import (
	"fmt"
	"math/rand/v2"
	"net/http"
)

// newRand returns the random source of the injected faults. PCG is small,
// fast and fully determined by its seed, which is what makes a failing run
// repeatable; the second word is fixed so that one number names a run.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x6863_3263_6363)) // "hs2ccc"
}

// chanceLocked reports true with probability p. It draws nothing when p is
// zero, so that switching faults off leaves the sequence the other fault
// sees unchanged, and a sandbox without random faults costs nothing.
func (s *Server) chanceLocked(p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	return s.rng.Float64() < p
}

// randomServerErrorLocked picks the status of a random backend failure. CC
// answers both 500 and 503, and a client must back off on either, so the
// sandbox sends each half the time.
func (s *Server) randomServerErrorLocked() int {
	if s.rng.IntN(2) == 0 {
		return http.StatusInternalServerError
	}
	return http.StatusServiceUnavailable
}

// validRate reports a fault probability outside 0..1; the negated test also
// refuses NaN, which would otherwise switch a fault silently off.
func validRate(name string, p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("ccsandbox: %s %v: want a probability from 0 to 1", name, p)
	}
	return nil
}

// validRejectDetail reports a reject-detail mode the sandbox does not know;
// "" stands for the default, RejectDetailLineEmail.
func validRejectDetail(mode string) error {
	switch mode {
	case "", RejectDetailLineEmail, RejectDetailEmail, RejectDetailCount:
		return nil
	}
	return fmt.Errorf("ccsandbox: reject detail %q: want %q, %q or %q", mode, RejectDetailLineEmail, RejectDetailEmail, RejectDetailCount)
}
