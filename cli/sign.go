package cli

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
)

// RemoteSigning is what the services offer through --server for
// provenance signing (client.Client): the key the server reports and a
// version's envelope as stored. The private key never leaves the server.
type RemoteSigning interface {
	SigningKeyPEM(ctx context.Context) ([]byte, error)
	Provenance(ctx context.Context, ref kiln.VersionRef) ([]byte, error)
}

func (a *App) versionVerifyCmd() *cobra.Command {
	var fast, inRegistry bool
	var keyFiles []string
	c := &cobra.Command{
		Use:   "verify IMAGE-N | oci://HOST[:PORT]/REPOSITORY/IMAGE:N",
		Short: "Check a version's signed provenance and re-hash its artifact",
		Long: "Check a version's signed provenance against the registry's record and re-hash its artifact.\n\n" +
			"With --server, the envelope and the record come from the server and are checked here; the artifact stays on the server and is not re-hashed " +
			"(the digest in the signed statement is checked against the registry's). Give --key with the public key from `kiln key export` run on the server, " +
			"obtained out of band, so the check does not rest on the server's word; without it the key the server reports is used.\n\n" +
			"From an OCI registry alone, on a machine without kiln's database or data directory: name the version's image " +
			"(oci://HOST[:PORT]/REPOSITORY/IMAGE:N, its semver tag, or @sha256:…; REPOSITORY is the --artifacts repository kiln pushed to), " +
			"or give --from-registry with IMAGE-N and --artifacts. The signed provenance attached to the image (an OCI referrer, or the sha256-<digest> tag) " +
			"is verified with the --key public key(s), its artifact must be exactly the image's layers, and every layer is pulled and hashed " +
			"(streamed, nothing kept). --artifacts-ca, --artifacts-credentials and --artifacts-plain-http say how to reach the registry.",
		Example: "  kiln version verify appserver-3\n" +
			"  kiln version verify oci://registry.example.com/kiln/appserver:3 --key kiln.pub\n" +
			"  kiln --artifacts oci://registry.example.com/kiln version verify appserver-3 --from-registry --key kiln.pub -o json",
		Args: exactArgs(1, "a version name such as appserver-3, or its image oci://HOST/REPOSITORY/appserver:3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var given []crypto.PublicKey
			for _, f := range keyFiles {
				k, err := readPublicKey(f)
				if err != nil {
					return err
				}
				given = append(given, k)
			}
			if strings.HasPrefix(args[0], "oci://") || inRegistry {
				return a.verifyFromRegistry(cmd, args[0], inRegistry, given, fast)
			}
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			if a.cfg.Server != "" {
				return a.verifyRemote(cmd, ref, given)
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			// kiln's own key and those it rotated out, unless --key names some.
			keys, id := signerKeys(svc.Signer)
			if given != nil {
				keys = given
				if id, err = keyIDs(given); err != nil {
					return err
				}
			}
			v, err := svc.Registry.FindVersion(cmd.Context(), ref)
			if err != nil {
				return err
			}
			if svc.Images != nil {
				// The record's signature here; the registry's image, every
				// blob's digest and the provenance attached there next.
				if err := sign.CheckVersion(cmd.Context(), svc.Registry, svc.Artifacts, keys, v, false); err != nil {
					return err
				}
				if !fast {
					return a.verifyImage(cmd, svc, keys, id, v)
				}
			} else if err := sign.CheckVersion(cmd.Context(), svc.Registry, svc.Artifacts, keys, v, !fast); err != nil {
				return err
			}
			what := "signature and artifact content verified"
			if fast {
				what = "signature verified (artifact not re-hashed)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (key %s, artifact %s)\n", v.Name, what, id, v.Provenance.Artifact.Digest)
			return nil
		},
	}
	c.Flags().BoolVar(&fast, "signature-only", false, "check the signature but do not re-read and hash the artifact (always so with --server)")
	c.Flags().StringArrayVar(&keyFiles, "key", nil, "verify with this public key (PEM, from `kiln key export`) instead of kiln's own or the server's; repeat it to accept any of several (rotated keys); required when verifying from the registry alone")
	c.Flags().BoolVar(&inRegistry, "from-registry", false, "verify IMAGE-N's image in the registry --artifacts names, with the --key public key(s), without kiln's database or data directory")
	return c
}

// verifyFromRegistry is `kiln version verify oci://…` and `kiln version
// verify IMAGE-N --from-registry`: the registry and the given keys only;
// Services is never opened (no database, no data directory, no signing
// key created).
func (a *App) verifyFromRegistry(cmd *cobra.Command, arg string, inRegistry bool, keys []crypto.PublicKey, signatureOnly bool) error {
	ref := arg
	if !strings.HasPrefix(arg, "oci://") {
		vr, err := kiln.ParseVersionRef("version", arg)
		if err != nil {
			return err
		}
		if a.cfg.Artifacts == "" {
			return kiln.FieldErrorf(kiln.EINVALID, "--from-registry", "no registry to verify %s in: give --artifacts oci://HOST/REPOSITORY (or KILN_ARTIFACTS), or name the image: kiln version verify oci://HOST/REPOSITORY/%s:%d", vr, vr.Image, vr.Number)
		}
		ref = fmt.Sprintf("%s/%s:%d", strings.TrimSuffix(a.cfg.Artifacts, "/"), vr.Image, vr.Number)
	} else if inRegistry {
		return kiln.FieldErrorf(kiln.EINVALID, "--from-registry", "%s names its registry already; drop --from-registry (it is for IMAGE-N with --artifacts)", arg)
	}
	if len(keys) == 0 {
		return kiln.FieldErrorf(kiln.EINVALID, "--key", "verifying %s from the registry alone needs the public key of the kiln that signed it: save `kiln key export` (run where kiln signs) to a file and pass --key FILE (repeat it for rotated keys)", ref)
	}
	if a.VerifyImage == nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln cannot verify images in a registry")
	}
	r, err := a.VerifyImage(cmd.Context(), a.cfg, ref, keys, signatureOnly)
	if err != nil {
		return err
	}
	r.Layers, r.DiskImages = orEmpty(r.Layers), orEmpty(r.DiskImages)
	return a.render(cmd.OutOrStdout(), r, func(w io.Writer) error {
		what := "signature and every layer verified from the registry alone"
		if len(r.DiskImages) > 0 {
			what = "signature, every layer and every disk image verified from the registry alone"
		}
		if !r.ContentRead {
			what = "signature verified from the registry alone, and the image's layers are the signed ones (not read: --signature-only)"
		}
		disks := ""
		if len(r.DiskImages) > 0 {
			disks = fmt.Sprintf(", %d disk image(s)", len(r.DiskImages))
		}
		_, err := fmt.Fprintf(w, "%s: %s: %s (key %s, %d layer(s)%s, %d bytes read, artifact %s, provenance %s)\n",
			r.Version, what, r.Ref, r.KeyID, len(r.Layers), disks, r.Bytes, r.Artifact, r.Provenance)
		return err
	})
}

// keyIDs names the keys given with --key.
func keyIDs(keys []crypto.PublicKey) (string, error) {
	ids := make([]string, len(keys))
	for i, k := range keys {
		id, err := sign.KeyID(k)
		if err != nil {
			return "", err
		}
		ids[i] = id
	}
	return strings.Join(ids, ", "), nil
}

// verifyImage is the registry half of `kiln version verify` with
// --artifacts oci://…: nothing local is needed.
func (a *App) verifyImage(cmd *cobra.Command, svc *Services, keys []crypto.PublicKey, id string, v *kiln.Version) error {
	c, err := svc.Images.CheckVersion(cmd.Context(), v, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: signature and artifact content verified in the registry: %s (key %s, %d layer(s), %d bytes read, artifact %s)\n",
		v.Name, c.Ref, id, len(c.Layers), c.Bytes, v.Provenance.Artifact.Digest)
	return nil
}

// signerKeys returns the keys kiln accepts signatures from (its own
// first) and the signing key's id.
func signerKeys(s *sign.Signer) ([]crypto.PublicKey, string) {
	var keys []crypto.PublicKey
	for _, k := range s.Keys() {
		keys = append(keys, k)
	}
	return keys, s.KeyID()
}

// verifyRemote is `kiln version verify --server URL`: steps 1–7 of
// docs/signing.md run here, on the envelope and the record the server
// hands over. It cannot re-hash the artifact, which stays on the server,
// and says so; without --key it also says whose key it trusted.
func (a *App) verifyRemote(cmd *cobra.Command, ref kiln.VersionRef, given []crypto.PublicKey) error {
	ctx := cmd.Context()
	svc, err := a.Services(ctx)
	if err != nil {
		return err
	}
	rs := svc.Signing
	if rs == nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln cannot fetch signed provenance through --server; run `kiln version verify` on the server without --server")
	}
	keys := given
	if keys == nil {
		pem, err := rs.SigningKeyPEM(ctx)
		if err != nil {
			return &kiln.Error{Code: kiln.ErrorCode(err), Err: err, Message: fmt.Sprintf(
				"cannot verify %s with the server's key: %s; pass --key FILE with the public key from `kiln key export` run on the server's machine, or run `kiln version verify` there without --server",
				ref, kiln.ErrorMessage(err))}
		}
		pub, err := sign.ParsePublicKeyPEM(pem)
		if err != nil {
			return err
		}
		keys = []crypto.PublicKey{pub}
	}
	id, err := keyIDs(keys)
	if err != nil {
		return err
	}
	v, err := svc.Registry.FindVersion(ctx, ref)
	if err != nil {
		return err
	}
	// The same checks and messages as sign.CheckVersion, which reads the
	// envelope from a registry; here it comes from the provenance route.
	if v.Provenance.Artifact == nil {
		return kiln.Errorf(kiln.EINVALID, "%s has no artifact; there is nothing to verify or launch", v.Name)
	}
	env, err := rs.Provenance(ctx, v.Ref())
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return kiln.Errorf(kiln.ECONFLICT, "%s has no signed provenance; it was not recorded by this kiln (or its signature was removed) and will not be launched", v.Name)
	}
	if err != nil {
		return err
	}
	if err := sign.VerifyVersionWith(keys, env, v); err != nil {
		return fmt.Errorf("%s: %w", v.Name, err)
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "%s: signature verified against the registry's record (key %s, artifact %s); the artifact is on the server and was not re-hashed: the signed digest equals the registry's\n",
		v.Name, id, v.Provenance.Artifact.Digest)
	if given == nil {
		fmt.Fprintf(out, "signature checked with the server's key %s; pass --key to check against a key you trust\n", id)
	}
	return nil
}

// readPublicKey reads a PEM public key file given with --key.
func readPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, kiln.FieldErrorf(kiln.ENOTFOUND, "--key", "public key file %s does not exist; save the output of `kiln key export` (run where kiln signs) there", path)
	}
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--key", "cannot read public key file %s: %v", path, err)
	}
	pub, err := sign.ParsePublicKeyPEM(data)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--key", "%s: %s", path, kiln.ErrorMessage(err))
	}
	return pub, nil
}

func (a *App) keyCmd() *cobra.Command {
	cmd := group("key", "The provenance signing key")
	cmd.AddCommand(&cobra.Command{
		Use:   "export",
		Short: "Print the public key (PEM) that verifies kiln's signed provenance",
		Long: "Print the public key (PEM) that verifies kiln's signed provenance.\n\n" +
			"With --server, print the key the server reports. That is the server's word: for checks that must not rest on it, " +
			"run `kiln key export` on the server's machine and hand the key over out of band.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if a.cfg.Server != "" {
				rs := svc.Signing
				if rs == nil {
					return kiln.Errorf(kiln.EUNAVAILABLE, "this kiln cannot fetch the signing key through --server; run `kiln key export` on the server without --server")
				}
				pem, err := rs.SigningKeyPEM(cmd.Context())
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(pem)
				return err
			}
			_, err = cmd.OutOrStdout().Write(svc.Signer.PublicKeyPEM())
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the signing key and the keys whose signatures kiln still accepts",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			if svc.Signer == nil {
				return kiln.Errorf(kiln.EINVALID, "`kiln key list` runs where the keys are; run it on the server without --server")
			}
			type row struct {
				KeyID string `json:"key_id"`
				Use   string `json:"use"`
				Path  string `json:"path,omitempty"`
			}
			rows := []row{{svc.Signer.KeyID(), "signing", svc.Signer.Path()}}
			for _, t := range svc.Signer.Trusted() {
				rows = append(rows, row{t.ID, "trusted", t.Path})
			}
			return a.render(cmd.OutOrStdout(), rows, func(w io.Writer) error {
				t := newTable(w, "KEY-ID", "USE", "PATH")
				for _, r := range rows {
					t.row(r.KeyID, r.Use, r.Path)
				}
				return t.flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Sign with a new key from now on; versions signed by the old one still verify",
		Long: "Create a new default signing key (DATA-DIR/keys/signing.key). The old public key is kept in DATA-DIR/keys/trusted, so versions " +
			"it signed still verify and launch; the old private key is moved to DATA-DIR/keys/retired for you to back up or destroy. " +
			"Restart `kiln serve` afterwards, and hand the new public key (`kiln key export`) to whoever verifies kiln's signatures.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.cfg.SigningKey != "" {
				return kiln.FieldErrorf(kiln.EINVALID, "--signing-key", "the signing key %s is yours to manage: put its public key in DATA-DIR/%s/OLD.pub and point --signing-key at a new key, or rotate the default key without --signing-key",
					a.cfg.SigningKey, sign.TrustedKeysDir)
			}
			r, err := sign.RotateKey(a.cfg.DataDir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "signing with the new key %s\n", r.New)
			fmt.Fprintf(out, "the old key %s is trusted for verification (%s)\n", r.Old, r.TrustedPath)
			fmt.Fprintf(cmd.ErrOrStderr(), "The old private key is in %s: back it up or destroy it. Restart kiln serve, and share the new public key (kiln key export).\n", r.RetiredPath)
			return nil
		},
	})
	return cmd
}
