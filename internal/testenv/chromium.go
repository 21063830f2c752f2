package testenv

import (
	"errors"
	"os/exec"
	"testing"
)

// ChromiumArgs returns the command-line flags to start Chromium with here:
// headless, as root (no sandbox), with its profile in userDataDir (use
// t.TempDir()), and without the background connections that a closed
// network refuses, many at a time. CDPScreenshotNewSurface is the
// screenshot path Playwright turns on against headless screenshots that
// never return.
func ChromiumArgs(userDataDir string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--enable-features=CDPScreenshotNewSurface",
		"--user-data-dir=" + userDataDir,
	}
}

// Chromium returns the path of the headless browser binary for browser
// tests (CHROMIUM in the env file, else "chromium" or "chromium-browser" on
// PATH), or skips (fails under CI=true) when there is none. Start it with
// ChromiumArgs.
func Chromium(t testing.TB) string {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		unavailable(t, "Chromium", "install it with `make testservers` (apt-get install chromium)", err)
		return ""
	}
	return path
}

// chromiumPath finds the browser binary.
func chromiumPath() (string, error) {
	if env, err := ReadEnv(); err == nil && env["CHROMIUM"] != "" {
		if p, err := exec.LookPath(env["CHROMIUM"]); err == nil {
			return p, nil
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium or chromium-browser on PATH")
}
