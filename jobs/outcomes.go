package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hs2cc/hs2cc/ccclient"
	"github.com/hs2cc/hs2cc/store"
)

// unsubscribedPages bounds the pages of unsubscribed contacts read to
// explain one import's cannot_add_to_list_count (500 a page).
const unsubscribedPages = 20

// readBackPages bounds the pages (500 contacts each) read back to learn
// which rows CC refused when its activity counted them without naming
// them: enough for an import of 40,000, and under 1% of the daily budget.
const readBackPages = 82

// readBackSkew is taken off an import's claim time when asking CC which
// contacts changed since, so that clocks a little apart lose no contact.
const readBackSkew = time.Minute

// settleRefusals settles, row by row, the rows of a completed import that
// CC did not take, so that one address CC dislikes holds back nobody else:
//
//   - rows CC's errors name, by their line in import_data (checked against
//     the email when CC gives both) or else by email, become rejected with
//     CC's message;
//   - rows of unsubscribed contacts (cannot_add_to_list_count) become
//     rejected: CC never adds them to lists;
//   - when CC counted refused rows (error_count, correctable_count) that it
//     did not name, the contacts on the import's first list that CC changed
//     since the import are read back: if exactly as many rows are missing
//     from them as CC counted, those are the refused ones (rejected);
//     otherwise the missing rows are failed, replayable, with the reason,
//     since which of them CC refused cannot be told.
//
// The caller marks every other row imported.
func (im *Importer) settleRefusals(ctx context.Context, imp *store.Import, act *ccclient.Activity) error {
	st := act.Status
	// import_data is rebuilt from the rows as submit built it: the rows it
	// did not send are rejected or released by now and not read again.
	set, err := im.contactsFor(ctx, imp.ID, imp.ContactCount)
	if err != nil {
		return err
	}
	byEmail := make(map[string]int, len(set.contacts))
	for i, c := range set.contacts {
		byEmail[strings.ToLower(c.Email)] = i
	}
	refused := map[int]string{} // contact index → why
	for _, re := range act.RowErrors {
		i, ok := -1, false
		if re.Line >= 1 && re.Line <= len(set.contacts) &&
			(re.Email == "" || strings.EqualFold(set.contacts[re.Line-1].Email, re.Email)) {
			i, ok = re.Line-1, true
		} else if re.Email != "" {
			i, ok = byEmail[strings.ToLower(re.Email)]
		}
		if ok {
			refused[i] = "Constant Contact refused this row: " + strings.TrimSpace(re.Message)
		}
	}
	named := len(refused)
	if st.CannotAddToListCount > 0 {
		unsub, _, err := im.cc.UnsubscribedEmails(ctx, unsubscribedPages)
		if err != nil {
			return err
		}
		var unsubEmails []string
		for i, c := range set.contacts {
			if unsub[strings.ToLower(c.Email)] {
				refused[i] = "the contact is unsubscribed in Constant Contact, which does not add unsubscribed contacts to lists"
				unsubEmails = append(unsubEmails, c.Email)
			}
		}
		// HubSpot is told these are unsubscribed, not merely rejected.
		if _, err := im.store.MarkUnsubscribed(ctx, unsubEmails, im.now()); err != nil {
			return err
		}
	}
	failed := map[int]string{}
	if unnamed := st.ErrorCount + st.CorrectableCount - named; unnamed > 0 && len(imp.ListIDs) > 0 {
		pages := min(len(set.contacts)/500+2, readBackPages)
		updated, complete, err := im.cc.UpdatedEmails(ctx, imp.ListIDs[0], imp.CreatedAt.Add(-readBackSkew), pages)
		if err != nil {
			return err
		}
		var missing []int
		for i, c := range set.contacts {
			if _, done := refused[i]; !done && !updated[strings.ToLower(c.Email)] {
				missing = append(missing, i)
			}
		}
		exact := complete && len(missing) == unnamed
		for _, i := range missing {
			if exact {
				refused[i] = "Constant Contact refused this row; its activity counted the row without naming it, and the contact was not changed by the import"
			} else {
				failed[i] = fmt.Sprintf("Constant Contact refused %d rows of this import without naming them, and this contact was not changed by the import; replay it to send it again", unnamed)
			}
		}
		im.log.Warn("CC counted refused rows without naming them; read back which contacts it changed",
			"import_id", imp.ID, "unnamed", unnamed, "missing", len(missing), "read_back_complete", complete)
	}
	if err := im.store.RejectRows(ctx, imp.ID, rowReasons(set, refused)); err != nil {
		return err
	}
	if err := im.store.FailRows(ctx, imp.ID, rowReasons(set, failed)); err != nil {
		return err
	}
	im.log.Warn("import had rows CC did not take; they are settled one by one", "import_id", imp.ID,
		"rejected", len(refused), "failed", len(failed), "error_count", st.ErrorCount,
		"correctable_count", st.CorrectableCount, "cannot_add_to_list_count", st.CannotAddToListCount)
	return nil
}

// rowReasons gives each row behind the contacts of byContact its reason.
func rowReasons(set *contactSet, byContact map[int]string) map[int64]string {
	out := make(map[int64]string, len(byContact))
	for i, why := range byContact {
		for _, id := range set.owners[i] {
			out[id] = why
		}
	}
	return out
}
