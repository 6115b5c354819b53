package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// runRemote is `kiln run --server URL`: the server queues the runs and its
// worker carries them out; this prints what was queued and how to follow.
// The estate is one an admin registered on the server (`kiln estate
// add`), named with --estate (its directory, as a first argument that is
// a path, is accepted too) and not read here.
func (a *App) runRemote(cmd *cobra.Command, estate string, args []string, all, force bool, vf *varFlags) error {
	if estate == "" && len(args) > 0 && strings.HasPrefix(args[0], "/") {
		estate, args = args[0], args[1:]
	}
	if estate == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "--estate", "with --server, name an estate registered on the server (`kiln estate list` there): --estate web")
	}
	if all == (len(args) > 0) {
		return &usageError{fmt.Errorf("give image names or --all (got %d name(s), --all=%v)", len(args), all)}
	}
	vars, err := vf.values()
	if err != nil {
		return err
	}
	svc, err := a.pipelineServices(cmd.Context())
	if err != nil {
		return err
	}
	st := svc.RunStarter
	if st == nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln cannot start runs remotely")
	}
	runs, err := st.StartRuns(cmd.Context(), kiln.RunRequest{Estate: estate, Images: args, All: all, Force: force, Vars: vars})
	if err != nil {
		return err
	}
	return a.render(cmd.OutOrStdout(), map[string]any{"runs": nonNilRuns(runs)}, func(w io.Writer) error {
		for _, r := range runs {
			fmt.Fprintf(w, "run %d: %s queued on the server (%s); follow it with `kiln run logs %d --follow`\n", r.ID, r.Image, r.Trigger, r.ID)
		}
		return nil
	})
}

func nonNilRuns(rs []*kiln.Run) []*kiln.Run {
	if rs == nil {
		return []*kiln.Run{}
	}
	return rs
}
