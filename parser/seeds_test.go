package parser

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds rewrites the committed seed corpus under
// testdata/fuzz from the same inputs the fuzz targets add in code (real Go
// ClientHellos, crafted frames). It only runs with PARSER_WRITE_SEEDS=1:
// the committed files pin one Go version's hellos.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PARSER_WRITE_SEEDS") != "1" {
		t.Skip("set PARSER_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(target string, i int, args ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n"
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				body += fmt.Sprintf("[]byte(%q)\n", v)
			case uint16:
				body += fmt.Sprintf("uint16(%d)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range frameSeeds(t) {
		write("FuzzParseFrame", i, f)
	}
	for i, h := range helloSeeds(t) {
		write("FuzzScanClientHello", i, h, uint16(i*37+11))
		write("FuzzReassembler", i, h, []byte{byte(i), 200, 1, 7, 2, 50, 3, 9, 0, 255, 0, 255, 0, 255, 0, 255})
	}
}
