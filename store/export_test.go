package store

// The hourly queries' text, for the benchmark that checks their plans.
const (
	ReceivedByHourSQL = receivedByHourSQL
	ImportedByHourSQL = importedByHourSQL
)
