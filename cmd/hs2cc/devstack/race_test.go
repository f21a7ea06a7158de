//go:build race

package devstack

// raceEnabled lets the throughput log say whether the race detector, which
// slows the embedded server several times over, was on.
const raceEnabled = true
