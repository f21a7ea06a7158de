// Package jobs is the asynchronous half of hs2cc: the task catalogue, the
// Enqueuer that is the only place enqueue options are chosen, the group
// aggregator that turns many enrollments into one Constant Contact import,
// the task handlers, and the periodic tasks.
//
// Task catalogue (payloads hold ids only; MySQL holds the data):
//
//	enrollment:sync    {"enrollment_id":N}  one stored enrollment version. TaskID
//	                   "enrollment:<id>:v<version>", Group = the enrollment's
//	                   target list set, so asynq holds it until the group is
//	                   aggregated. Run alone only when enqueued without a group.
//	cc:import          {"enrollment_ids":[…]}  made by the aggregator from one
//	                   group. Claims the rows in MySQL (pending → importing),
//	                   posts one contacts_json_import and records the activity.
//	cc:activity        {"import_id":N}  polls the CC activity until it is final
//	                   and settles the import's rows (imported or failed).
//	enrollment:sweep   {}  periodic: re-enqueues enrollments that have waited in
//	                   pending too long because Redis lost or never got their task,
//	                   and resumes imports whose task was lost.
//	cc:import-wait     {"lists":[…]}  one per list set whose rows were parked
//	                   because CC is not connected or a list is missing that the
//	                   rules may not create. TaskID "cc:import-wait:<group>". It
//	                   waits, spending no retry, until the lists resolve, then
//	                   queues the set's pending rows as imports.
//	cc:lists-check     {}  checks (and, when the rules allow it, creates) every
//	                   list the rules name: queued when CC gets connected (TaskID
//	                   "cc:lists-check:connected") and periodic. A missing list is
//	                   recorded as attention.
//	cc:token-refresh   {}  periodic: refreshes the CC token before it expires.
//	cc:reconcile       {}  periodic, off unless HS2CC_RECONCILE_INTERVAL is set:
//	                   compares the rules' lists in CC with the bridge's imports
//	                   (reconcile.go), report-only, and skips itself when it would
//	                   spend more than half of today's remaining CC budget.
//	retention:purge    {}  periodic: empties raw delivery bodies older than the
//	                   retention (personal data), keeping the rows.
//	hubspot:writeback  {}  only with the HubSpot write-back on (WithWriter):
//	                   sends the outbox (table hubspot_writeback, filled in the
//	                   transaction that settles rows) to HubSpot, at most 100
//	                   contacts a batch call, until it is empty (writeback.go).
//	                   Queued 2 s after an import settles (TaskID
//	                   "hubspot:writeback:<2 s window>") and periodic, every
//	                   minute, for what a lost Redis or a crash left behind.
//	hubspot:unsubscribes {}  periodic with the write-back on: reads the CC
//	                   contacts unsubscribed since its last complete run and
//	                   queues hs2cc_cc_status=unsubscribed for the bridge's
//	                   contacts among them (unsubscribes.go).
//
// Periodic tasks are enqueued by one work process at a time: the holder of
// the scheduler lease (leader.go). Every work process also checks the
// rules' lists when it starts, and watches Redis for a loss of its data
// (sweep.go), queuing again from MySQL what waited.
//
// Retries: a wait that is nobody's fault (an activity still running, CC's
// 4 requests/s throttle, the daily quota, HubSpot's 429) is not counted as
// a failure and does not spend the task's retries; see retryDelay and
// isFailure. A state
// only a person can clear (CC not connected, a missing list) parks the rows
// as pending behind one cc:import-wait; see blocked.
package jobs
