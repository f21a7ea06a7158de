//go:build race

package main

// raceEnabled says the race detector is on: it slows bcrypt, pure Go, about
// fifteen times, so that one check of cost 10 takes seconds, and tests that
// time the webhook beside bcrypt hold it to a looser bound.
const raceEnabled = true
