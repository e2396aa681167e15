package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBadFlagsExit2NamingTheFlag(t *testing.T) {
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"--reps", "0"}, "--reps"},
		{[]string{"--burst", "0s"}, "--burst"},
		{[]string{"--unit", "0"}, "--unit"},
		{[]string{"--flows", "0"}, "--flows"},
		{[]string{"--cpus", "x"}, "--cpus"},
		{[]string{"--cpus", "1,1"}, "--cpus"},
		{[]string{"--scenarios", "haproxy"}, "--scenario"},
		{[]string{"--anysched", "/nonexistent/anysched"}, "--anysched"},
		{[]string{"--skip-conns", "--skip-packets", "--micro-count", "0"}, "--micro-count"},
		{[]string{"--skip-packets", "--hold", "1"}, "--hold"},
		{[]string{"--skip-packets", "--hold-rate", "0"}, "--hold-rate"},
		{[]string{"--skip-packets", "--conn-reps", "0"}, "--conn-reps"},
		{[]string{"--skip-packets", "--conn-duration", "1ms"}, "--conn-duration"},
		{[]string{"--skip-packets", "--conn-concurrency", "0"}, "--conn-concurrency"},
		{[]string{"--skip-packets", "--shares", "0,x"}, "--shares"},
		{[]string{"--skip-packets", "--shares", "101"}, "--shares"},
		{[]string{"--skip-packets", "--anysched", "main_test.go", "--anynode", "/nonexistent/anynode"}, "--anynode"},
		{[]string{"--skip-conns", "--skip-packets", "--micro-benchtime", "soon"}, "--micro-benchtime"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--skip-conns", "--skip-packets", "extra"}, "extra"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.flag) {
			t.Errorf("%v: stderr %q does not name %s", tc.args, stderr.String(), tc.flag)
		}
	}
}

func TestHelpExits0(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, &stdout, &stderr); code != exitOK {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "-reps") {
		t.Errorf("usage lacks -reps: %q", stderr.String())
	}
}
