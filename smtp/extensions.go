package smtp

import "maps"

// Extensions returns a copy of the EHLO keywords the server advertised on
// the current connection (upper case) with their parameters: after
// STARTTLS, those of the EHLO said inside TLS. A server check lists them.
func (c *Client) Extensions() map[string]string { return maps.Clone(c.ext) }
