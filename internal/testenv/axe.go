package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
)

// AxeScriptVar is the environment variable that names axe-core's browser
// script (axe.min.js) when it is not where .ci/servers.sh installs it; it
// wins over AXE_SCRIPT in the env file.
const AxeScriptVar = "SOCKMAIL_AXE_SCRIPT"

// maxAxeScript bounds the script read: axe.min.js 4.x is about 650 KB.
const maxAxeScript = 8 << 20

// AxeScript returns the text of axe-core's browser script, which the
// Chromium tests inject into pages to check their accessibility. It is
// found through $SOCKMAIL_AXE_SCRIPT, else AXE_SCRIPT in the env file
// (.ci/servers.sh installs the pinned axe-core with npm ci). When there is
// none the test is skipped, or fails under CI=true.
func AxeScript(t testing.TB) string {
	t.Helper()
	path, err := axeScriptPath()
	if err == nil {
		var script string
		if script, err = readAxeScript(path); err == nil {
			return script
		}
	}
	unavailable(t, "axe-core", "install it with `make testservers` (npm ci in .ci/axe) or set "+AxeScriptVar+" to an axe.min.js", err)
	return ""
}

// axeScriptPath says where axe.min.js is: $SOCKMAIL_AXE_SCRIPT, else the
// env file's AXE_SCRIPT.
func axeScriptPath() (string, error) {
	if p := os.Getenv(AxeScriptVar); p != "" {
		return p, nil
	}
	env, err := ReadEnv()
	if err != nil {
		return "", fmt.Errorf("no %s and no env file: %w", AxeScriptVar, err)
	}
	v, err := env.Require("AXE_SCRIPT")
	if err != nil {
		return "", err
	}
	return v[0], nil
}

// readAxeScript reads the script at path, at most maxAxeScript bytes, and
// checks that it is axe-core's: its banner and a definition of axe.run.
func readAxeScript(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("axe-core script: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAxeScript+1))
	if err != nil {
		return "", fmt.Errorf("axe-core script %s: %w", path, err)
	}
	switch {
	case len(b) > maxAxeScript:
		return "", fmt.Errorf("axe-core script %s: larger than %d bytes, not axe.min.js", path, maxAxeScript)
	case len(b) == 0:
		return "", errors.New("axe-core script " + path + ": empty file")
	case !bytes.HasPrefix(b, []byte("/*! axe v")) || !bytes.Contains(b, []byte("axe.run=")):
		return "", fmt.Errorf("axe-core script %s: not axe-core's axe.min.js (no \"/*! axe v\" header or no axe.run)", path)
	}
	return string(b), nil
}
