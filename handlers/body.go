package handlers

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hs2cc/hs2cc/store"
)

// DefaultMaxBodyBytes is the largest webhook body taken when Config sets
// none. A workflow that "includes all properties" sends the whole contact
// with each property's history, which reaches hundreds of KB for a contact
// with a long history. 8 MiB leaves room for that many times over, and a
// body that large still fits the MEDIUMBLOB columns and MariaDB's default
// 16 MiB max_allowed_packet.
const DefaultMaxBodyBytes = 8 << 20

// measureFactor bounds reading the rest of a body over the limit to learn
// its size: past this many times the limit reading stops, and the size is
// recorded as "at least" what was read. Reading costs no memory, but each
// byte is a sender's byte the process must take from the network.
const measureFactor = 4

// bodyChunk is the unit a body is read in. Chunks come from a pool and go
// back to it once the body is copied out whole, so that reading a body
// allocates little more than the body itself, however it arrives.
const bodyChunk = 32 << 10

var bodyChunks = sync.Pool{New: func() any { c := make([]byte, bodyChunk); return &c }}

// oversize is what is known of a body over the limit, which is answered 413
// unverified: once it is known to be over, no more of it than its start is
// kept.
type oversize struct {
	head []byte // the first store.TooLargeHeadMax bytes, or fewer if fewer came
	// read is how many bytes arrived; atLeast says that reading stopped
	// before the body ended, past the measuring bound or on a broken or
	// stalled connection, so that read is a lower bound.
	read    int64
	atLeast bool
	// declared is the request's Content-Length, -1 when it declared none.
	declared int64
}

// readBody reads the body of r when it is at most limit bytes, into memory
// that grows with what arrives and is reserved from res as it grows. A body
// over the limit is not kept: the oversize it returns instead holds its
// start and its size. A body that stops arriving before its end (a slow or
// aborted upload, a malformed chunked encoding) is answered 400
// incomplete_body: the sender broke it, and nothing usable arrived. A body
// that cannot get memory within bodyMemoryWait is answered 503 busy, which
// HubSpot retries.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, res *bodyReservation) ([]byte, *oversize, error) {
	declared := r.ContentLength
	if declared > limit {
		// The Content-Length gives it away: only the start is read.
		head, n, err := readUpTo(r.Body, store.TooLargeHeadMax-1, declared, res)
		if errors.Is(err, errBodyMemoryBusy) {
			return nil, nil, busy(err)
		}
		return nil, measureOversize(r.Body, head, n, n < store.TooLargeHeadMax, err, declared, limit), nil
	}
	raw, n, err := readUpTo(r.Body, limit, declared, res)
	switch {
	case errors.Is(err, errBodyMemoryBusy):
		return nil, nil, busy(err)
	case n > limit:
		return nil, measureOversize(r.Body, raw, n, false, err, declared, limit), nil
	case err != nil:
		return nil, nil, incompleteBody(w, err)
	}
	return raw, nil, nil
}

// answerGrace is how long the answer to a broken upload may take to write.
// The server's write deadline counts from the end of the request's headers
// and may have passed by the time its read deadline ends the body, which
// would leave the 400 unsent.
const answerGrace = 5 * time.Second

// incompleteBody is the answer to a body that stopped before its end. It
// gives the answer time to be written whatever deadline the server set.
func incompleteBody(w http.ResponseWriter, err error) *apiError {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(answerGrace))
	return newError(http.StatusBadRequest, CodeIncompleteBody, "the body ended before its end: a slow, aborted or malformed upload", err)
}

// readUpTo reads r to its end or to limit+1 bytes, whichever comes first,
// and returns what it read, how many bytes that was, and the error that
// stopped it, nil at the end of the body or at limit+1 bytes. Past limit it
// returns only the first store.TooLargeHeadMax bytes, all that is kept of a
// body over the limit. Memory follows what was sent, never what the request
// declared: the bytes are gathered in pooled chunks as they arrive and
// copied once into a slice of their exact length, so that a declared 8 MiB
// that never comes costs one chunk for as long as the sender stalls, and a
// body that comes whole costs its own size. Each chunk is reserved from res
// before it is filled, for no more than the declared length (-1 when none)
// leaves it room to hold; the final copy briefly holds the body twice, a
// moment too short to reserve.
func readUpTo(r io.Reader, limit, declared int64, res *bodyReservation) ([]byte, int64, error) {
	most := limit + 1
	var chunks []*[]byte
	defer func() {
		for _, c := range chunks {
			bodyChunks.Put(c)
		}
	}()
	var n int64 // bytes read into chunks
	var err error
	for n < most && err == nil {
		room := min(int64(bodyChunk), most-n)
		want := room
		if declared >= 0 {
			want = min(room, max(declared-n, 0))
		}
		if err = res.grow(want); err != nil {
			break
		}
		c := bodyChunks.Get().(*[]byte)
		chunks = append(chunks, c)
		// Fill the chunk, or stop short of it at the end of the body.
		buf := (*c)[:room]
		filled := 0
		for filled < len(buf) && err == nil {
			var m int
			m, err = r.Read(buf[filled:])
			filled += m
		}
		n += int64(filled)
		if extra := int64(filled) - want; extra > 0 {
			// More came than the request declared, which net/http never
			// lets through; the memory is reserved all the same.
			if gerr := res.grow(extra); gerr != nil {
				err = gerr
			}
		}
	}
	if err == io.EOF {
		err = nil
	}
	keep := n
	if n > limit {
		keep = min(n, store.TooLargeHeadMax)
	}
	out := make([]byte, 0, keep)
	for _, c := range chunks {
		out = append(out, (*c)[:min(int64(len(*c)), keep-int64(len(out)))]...)
	}
	return out, n, err
}

// measureOversize learns what it can of a body over limit whose first n
// bytes were read already, head being their start: reading them ended the
// body (ended) or stopped with err. It counts the rest without keeping it,
// up to measureFactor times the limit in all.
func measureOversize(body io.Reader, head []byte, n int64, ended bool, err error, declared, limit int64) *oversize {
	o := &oversize{head: head, read: n, declared: declared}
	switch {
	case err != nil:
		// The connection broke or stalled: what arrived is all there is.
		o.atLeast = true
		return o
	case ended:
		// Its Content-Length said more than the body that ended here.
		return o
	}
	rest := max(measureFactor*limit-o.read, 0)
	counted, err := io.CopyN(io.Discard, body, rest)
	o.read += counted
	switch {
	case err == io.EOF:
	case err != nil:
		o.atLeast = true
	case o.read != declared:
		// Stopped at the bound with the end unseen: net/http ends a body
		// at its Content-Length, so only a declared length says there was
		// no more.
		o.atLeast = true
	}
	return o
}
