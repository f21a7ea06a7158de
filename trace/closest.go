package trace

import (
	"cmp"
	"slices"
	"strings"
)

// Closest returns up to n of candidates nearest to email: fewest edits
// first (Levenshtein distance, case ignored), then those of the same
// domain, then in alphabetical order. The email itself is never among
// them. Candidates come from a cheap SQL prefilter (same first letters or
// same domain), so this only ranks a few hundred strings.
func Closest(email string, candidates []string, n int) []string {
	target := strings.ToLower(strings.TrimSpace(email))
	_, domain, _ := strings.Cut(target, "@")
	type scored struct {
		email      string
		dist       int
		sameDomain bool
	}
	var all []scored
	seen := map[string]bool{}
	for _, c := range candidates {
		lc := strings.ToLower(strings.TrimSpace(c))
		if lc == "" || lc == target || seen[lc] {
			continue
		}
		seen[lc] = true
		_, d, _ := strings.Cut(lc, "@")
		all = append(all, scored{email: lc, dist: levenshtein(target, lc), sameDomain: domain != "" && d == domain})
	}
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(a.dist, b.dist); c != 0 {
			return c
		}
		if a.sameDomain != b.sameDomain {
			if a.sameDomain {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.email, b.email)
	})
	out := []string{}
	for _, s := range all[:min(n, len(all))] {
		out = append(out, s.email)
	}
	return out
}

// levenshtein counts the single-rune insertions, deletions and
// substitutions that turn a into b, in one row of memory.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	row := make([]int, len(rb)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		prev := row[0]
		row[0] = i
		for j := 1; j <= len(rb); j++ {
			cur := row[j]
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			row[j] = min(row[j]+1, row[j-1]+1, prev+cost)
			prev = cur
		}
	}
	return row[len(rb)]
}
