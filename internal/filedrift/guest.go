package filedrift

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-project/kiln"
)

// GuestCommand is the hidden kiln command that runs GuestMain inside an
// instance: `kiln __file-drift < manifest`.
const GuestCommand = "__file-drift"

// guestMagic starts GuestMain's answer: what the host reads first to
// tell this command from a kiln binary that predates it.
const guestMagic = "kiln-file-drift 1\n"

// GuestMain compares the machine it runs on with the image manifest on
// stdin (Manifest.Encode) and writes the Result on stdout, after a line
// that says the format. Flags: --root DIR compares another tree than "/",
// --hash-all hashes every file (Options.HashAll). It returns the exit
// status: 0 when it compared (drift or not), 1 when it could not, 2 for
// bad flags.
func GuestMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(GuestCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "/", "the tree to compare")
	hashAll := fs.Bool("hash-all", false, "hash every regular file, even those whose change time says they were not written")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	m, err := Decode(bufio.NewReaderSize(stdin, 64<<10))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	res, err := Compare(ctx, *root, m, Options{HashAll: *hashAll})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	b, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if _, err := io.WriteString(stdout, guestMagic+string(b)+"\n"); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// ParseGuest reads GuestMain's answer (its exit status, stdout and
// stderr). binary names the kiln binary that ran, for the error that
// says an image predates the command.
func ParseGuest(code int, stdout, stderr []byte, binary string) (*Result, error) {
	if !bytes.HasPrefix(stdout, []byte(guestMagic)) {
		why := strings.TrimSpace(string(stderr))
		if len(why) > 300 {
			why = why[:300] + "…"
		}
		if code != 0 && (strings.Contains(why, "unknown command") || strings.Contains(why, "unknown flag") || why == "") {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "the kiln binary in this instance's image (%s) predates file drift on virtual machines (it has no %s command: %q); rebuild the image with this kiln and roll the instance onto the new version", binary, GuestCommand, why)
		}
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "compare the instance's files with its image: exit %d: %s", code, why)
	}
	var res Result
	if err := json.Unmarshal(bytes.TrimSpace(stdout[len(guestMagic):]), &res); err != nil {
		return nil, fmt.Errorf("compare the instance's files with its image: read the answer: %w", err)
	}
	if res.Files == nil {
		res.Files = []kiln.DriftEntry{}
	}
	return &res, nil
}
