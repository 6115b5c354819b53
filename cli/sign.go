package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
)

func (a *App) versionVerifyCmd() *cobra.Command {
	var fast bool
	c := &cobra.Command{
		Use:   "verify IMAGE-N",
		Short: "Check a version's signed provenance and re-hash its artifact",
		Args:  exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			v, err := svc.Registry.FindVersion(cmd.Context(), ref)
			if err != nil {
				return err
			}
			if err := sign.CheckVersion(cmd.Context(), svc.Registry, svc.Artifacts, svc.Signer.Public(), v, !fast); err != nil {
				return err
			}
			what := "signature and artifact content verified"
			if fast {
				what = "signature verified (artifact not re-hashed)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (key %s, artifact %s)\n", v.Name, what, svc.Signer.KeyID(), v.Provenance.Artifact.Digest)
			return nil
		},
	}
	c.Flags().BoolVar(&fast, "signature-only", false, "check the signature but do not re-read and hash the artifact")
	return c
}

func (a *App) keyCmd() *cobra.Command {
	cmd := group("key", "The provenance signing key")
	cmd.AddCommand(&cobra.Command{
		Use:   "export",
		Short: "Print the public key (PEM) that verifies kiln's signed provenance",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(svc.Signer.PublicKeyPEM())
			return err
		},
	})
	return cmd
}

// launchCheck refuses to launch a version whose signed provenance does
// not verify. The artifact's content is checked by the platform when it
// unpacks it (and only then), so this does not re-hash.
func (a *App) launchCheck(svc *Services) func(context.Context, *kiln.Version) error {
	return func(ctx context.Context, v *kiln.Version) error {
		if svc.Signer == nil {
			return nil
		}
		if err := sign.CheckVersion(ctx, svc.Registry, svc.Artifacts, svc.Signer.Public(), v, false); err != nil {
			return fmt.Errorf("refusing to launch: %w", err)
		}
		return nil
	}
}
