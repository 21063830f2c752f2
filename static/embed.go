// Package static holds the web app's stylesheet and script, embedded into
// the binary so that nothing is fetched from elsewhere at run time.
package static

import "embed"

// FS holds style.css, app.js and favicon.svg.
//
//go:embed style.css app.js favicon.svg
var FS embed.FS
