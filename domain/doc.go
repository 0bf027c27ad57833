// Package domain is the pure core of activityd: events, actions, the status
// workflow, validation of client input and the authorisation policy. It
// imports only the standard library so that every rule can be tested
// without I/O and reused by every adapter.
package domain
