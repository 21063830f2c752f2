// Package static holds the web app's stylesheet and script, embedded into
// the binary so that nothing is fetched from elsewhere at run time.
package static

import "embed"

// FS holds style.css and app.js.
//
//go:embed style.css app.js
var FS embed.FS
