package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// sandboxStats is the part of the CC sandbox's GET /sandbox/stats that
// --until-imported reads. It is decoded into a struct of its own, not
// ccsandbox.Stats, so that the load generator does not link the sandbox
// into production binaries; TestSandboxStatsDecode keeps the two in step.
type sandboxStats struct {
	// Requests counts the sandbox's calls by route pattern, such as
	// "POST /v3/activities/contacts_json_import".
	Requests map[string]int `json:"requests"`
	// Imports counts accepted imports, ImportRows the rows received by
	// completed ones.
	Imports    int `json:"imports"`
	ImportRows int `json:"import_rows"`
}

// Listed is how an --until-imported run ended at the sandbox.
type Listed struct {
	// WallS runs from the first request to the last contact listed;
	// AfterLastAckS from the last answer to the last contact listed.
	WallS         float64 `json:"wall_s"`
	AfterLastAckS float64 `json:"after_last_ack_s"`
	// CCCalls counts every CC API call the bridge made from the first
	// request until the last contact was listed (token grants are not API
	// calls); ImportCalls and ActivityCalls are the imports and the
	// activity polls among them. The poll that tells the bridge of the
	// last import's outcome comes after, so it is not in them.
	CCCalls       int `json:"cc_calls"`
	ImportCalls   int `json:"import_calls"`
	ActivityCalls int `json:"activity_calls"`
	Imports       int `json:"imports"`
	ImportRows    int `json:"import_rows"`
	at            time.Time
}

// awaitImported polls the sandbox until want more rows than in before were
// received by completed imports, and reports the calls made meanwhile.
// The sandbox settles imports as it is read, so the time found is within
// one poll of when the last contact was listed.
func awaitImported(ctx context.Context, base string, before sandboxStats, want int, limit time.Duration) (Listed, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := readSandboxStats(ctx, base)
		if err != nil {
			return Listed{}, err
		}
		if rows := st.ImportRows - before.ImportRows; rows >= want {
			l := Listed{at: time.Now(), Imports: st.Imports - before.Imports, ImportRows: rows}
			for route, n := range st.Requests {
				n -= before.Requests[route]
				switch {
				case strings.Contains(route, "/oauth2/"):
					continue
				case strings.HasPrefix(route, "POST /v3/activities/contacts_json_import"):
					l.ImportCalls += n
				case strings.HasPrefix(route, "GET /v3/activities/"):
					l.ActivityCalls += n
				}
				l.CCCalls += n
			}
			return l, nil
		} else if time.Now().After(deadline) {
			return Listed{}, fmt.Errorf("simulate: the sandbox imported %d of %d contacts in %s", rows, want, limit)
		}
		select {
		case <-ctx.Done():
			return Listed{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readSandboxStats(ctx context.Context, base string) (sandboxStats, error) {
	var st sandboxStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/sandbox/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("simulate: sandbox stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("simulate: sandbox stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
