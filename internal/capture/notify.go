package capture

import "sync"

// Notifier tells the pages that show captured mail live that a message
// was stored by this process's capture server (Options.Notifier). A
// waiter takes Changed before it reads the store, then waits on the
// channel: a message stored in between closes the channel it holds, so
// none is missed. It has no goroutine and nothing to stop.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewNotifier returns a Notifier.
func NewNotifier() *Notifier { return &Notifier{ch: make(chan struct{})} }

// Changed returns a channel closed at the next Notify.
func (n *Notifier) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// Notify wakes every waiter on the channels Changed returned so far.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}
