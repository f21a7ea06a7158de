package trace

import (
	"fmt"
	"strings"
	"time"
)

// Stamp is how a trace writes a time: UTC, to the second.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// Lines renders the story for a terminal: what the bridge knows of the
// contact, then one line per event, oldest first, then what CC holds now
// when it was asked. An unknown contact is said to be so, with the
// closest known emails.
func Lines(s *Story) []string {
	if !s.Found {
		out := []string{fmt.Sprintf("The bridge has never seen %q.", s.Query)}
		if len(s.Closest) > 0 {
			out = append(out, "Closest known emails: "+strings.Join(s.Closest, ", "))
		} else if strings.Contains(s.Query, "@") {
			out = append(out, "No known email is close to it.")
		}
		return append(out, liveLines(s.Live)...)
	}
	var out []string
	for _, c := range s.Contacts {
		line := fmt.Sprintf("Contact %s (HubSpot id %s, portal %d): enrollment %d, version %d, %s",
			c.Email, c.HubSpotID, c.PortalID, c.EnrollmentID, c.Version, c.Status)
		if c.StatusReason != "" {
			line += " (" + c.StatusReason + ")"
		}
		out = append(out, line+", lists "+listText(c.Lists))
	}
	for _, e := range s.Events {
		out = append(out, Stamp(e.At)+"  "+e.Text)
	}
	return append(out, liveLines(s.Live)...)
}

func liveLines(l *Live) []string {
	if l == nil {
		return nil
	}
	head := "CC now (" + Stamp(l.CheckedAt) + "): "
	switch {
	case l.Error != "":
		return []string{head + "could not ask: " + l.Error}
	case !l.InCC:
		line := head + "no contact with the email " + l.Email
		if len(l.Expected) > 0 {
			line += "; the bridge imported it onto " + listText(l.Expected)
		}
		return []string{line}
	}
	line := fmt.Sprintf("%scontact %s, email status %s, on lists %s", head, l.ContactID, l.EmailStatus, listText(l.Lists))
	if len(l.Missing) > 0 {
		line += "; missing from " + listText(l.Missing) + ", which the bridge imported it onto"
	}
	return []string{line}
}

func listText(lists []string) string {
	if len(lists) == 0 {
		return "(none)"
	}
	return strings.Join(lists, ", ")
}

func routeText(route string) string {
	if route == "" {
		return ""
	}
	return " (" + route + ")"
}
