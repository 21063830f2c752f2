//go:build sendonly

package main

// --store in the sendonly build, which has no database drivers:
// sendCommand (main_sendonly.go) hands a send with --store or --database
// to the full build before its flags get here, so checkStore sees
// neither; should it, it refuses them.

import (
	"context"
	"errors"

	"sockmail/smtp"
	"sockmail/smtp/message"
)

// errNoStore is the error of --store and --database in this build.
var errNoStore = errors.New("--store and --database are not in this build (built with -tags sendonly: no database); run the full build, sockmail-server")

// storeDatabase returns the --database flag as given.
func storeDatabase(flagValue string, _ func(string) string) string { return flagValue }

// checkStore refuses --store and --database.
func (p *sendPlan) checkStore(f *sendFlags) error {
	if f.storeSend || f.database != "" {
		return errNoStore
	}
	return nil
}

// sendRecorder is never made in this build.
type sendRecorder struct{}

// openRecorder fails: checkStore refused --store already.
func openRecorder(context.Context, string) (*sendRecorder, error) { return nil, errNoStore }

func (*sendRecorder) Close() {}

func (*sendRecorder) tee(c message.Content) smtp.Message { return c }

func (*sendRecorder) record(context.Context, smtp.Config, message.Content, *smtp.Transcript, outcome) (int64, error) {
	return 0, errNoStore
}
