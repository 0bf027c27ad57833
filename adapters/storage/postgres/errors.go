package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/lib/pq"

	"github.com/activityd/activityd/adapters/storage"
	"github.com/activityd/activityd/domain"
)

// wrap classifies err: a server that cannot be reached or cannot serve now
// becomes an error matching domain.ErrUnavailable (and still its cause);
// anything else is returned as it is. A caller's cancellation stays
// context.Canceled: nobody is waiting for the answer.
func wrap(err error) error {
	if err == nil || errors.Is(err, domain.ErrUnavailable) {
		return err
	}
	if isUnavailable(err) {
		return fmt.Errorf("%w: postgres: %w", domain.ErrUnavailable, err)
	}
	return err
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, storage.ErrClosed) ||
		err.Error() == "sql: database is closed" { // database/sql's own, unexported
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true // dial, DNS, timeout: the network between us and the server
	}
	if e := pq.As(err); e != nil {
		return unavailableCode(string(e.Code))
	}
	return false
}

// unavailableCode reports SQLSTATEs that mean "the server cannot serve this
// now; try again later" rather than "this request is wrong".
func unavailableCode(code string) bool {
	switch code {
	case "57014", // query_canceled: statement_timeout
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: the database system is starting up
		"57P05", // idle_session_timeout
		"55P03", // lock_not_available: lock_timeout
		"40P01", // deadlock_detected
		"40001", // serialization_failure
		"25006", // read_only_sql_transaction: connected to a standby after failover
		"58000", // system_error
		"58030": // io_error
		return true
	}
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "08", // connection exception
		"53": // insufficient resources: too many connections, disk full, out of memory
		return true
	}
	return false
}
