package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

func (a *App) versionCmd() *cobra.Command {
	cmd := group("version", "Record, query and move image versions")
	cmd.AddCommand(a.versionCreateCmd(), a.versionListCmd(), a.versionLatestCmd(), a.versionShowCmd(),
		a.versionStatusCmd(), a.versionTagCmd(), a.versionHistoryCmd(), a.versionLineageCmd(),
		a.versionDiffCmd(), a.versionLogCmd(), a.versionAttachmentsCmd(), a.versionVerifyCmd(), a.versionExportCmd())
	cmd.AddCommand(a.versionSBOMCmd(), a.versionImportCmd(), a.versionRebuildCmd(), a.versionPackagesCmd())
	cmd.AddCommand(a.revocationCmds()...)
	return cmd
}

// versionArg parses a command's IMAGE-N argument and opens the registry:
// how every command about one version starts.
func (a *App) versionArg(cmd *cobra.Command, arg string) (kiln.Registry, kiln.VersionRef, error) {
	ref, err := kiln.ParseVersionRef("version", arg)
	if err != nil {
		return nil, ref, err
	}
	reg, err := a.registry(cmd)
	return reg, ref, err
}

// findVersion is versionArg that also loads the version (ENOTFOUND when
// there is none).
func (a *App) findVersion(cmd *cobra.Command, arg string) (kiln.Registry, *kiln.Version, error) {
	reg, ref, err := a.versionArg(cmd, arg)
	if err != nil {
		return nil, nil, err
	}
	v, err := reg.FindVersion(cmd.Context(), ref)
	return reg, v, err
}

func (a *App) versionCreateCmd() *cobra.Command {
	var (
		semver, method, parent, base, pkgFile, builtBy string
		sources, tags                                  []string
	)
	c := &cobra.Command{
		Use:   "create IMAGE",
		Short: "Record a new version of an image, as a build does; prints its name",
		Args:  exactArgs(1, "the image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			nv := &kiln.NewVersion{Image: args[0], SemVer: semver, Tags: kiln.Tags{}}
			m, err := kiln.ParseMethod("--method", method)
			if err != nil {
				return err
			}
			nv.Provenance.Method = m
			if parent != "" {
				ref, err := kiln.ParseVersionRef("--parent", parent)
				if err != nil {
					return err
				}
				nv.Provenance.Parent = &ref
			}
			if base != "" {
				ref, err := kiln.ParseVersionRef("--base", base)
				if err != nil {
					return err
				}
				nv.Provenance.Base = &ref
			}
			for _, s := range sources {
				src, err := kiln.ParseSource("--source", s)
				if err != nil {
					return err
				}
				nv.Provenance.Sources = append(nv.Provenance.Sources, src)
			}
			for _, s := range tags {
				k, v, err := kiln.ParseTag("--tag", s)
				if err != nil {
					return err
				}
				nv.Tags[k] = v
			}
			if pkgFile != "" {
				pkgs, err := readPackages(pkgFile)
				if err != nil {
					return err
				}
				nv.Provenance.Packages = pkgs
			}
			nv.Provenance.BuiltBy = builtBy
			if builtBy == "" {
				nv.Provenance.BuiltBy = kiln.ActorFrom(cmd.Context())
			}
			// Registered, not built by kiln: the record is this actor's
			// claim (the server sets it too when this goes through --server).
			nv.Provenance.RecordedBy = kiln.ActorFrom(cmd.Context())
			if err := nv.Validate(); err != nil {
				return err
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			v, err := reg.CreateVersion(cmd.Context(), nv)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), v, func(_ io.Writer) error {
				cmd.Println(v.Name)
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&semver, "semver", "", "semantic version MAJOR.MINOR.PATCH; kiln appends the UTC build stamp")
	f.StringVar(&method, "method", "fresh", "how it was built: fresh, reheat or external (built by another tool)")
	f.StringVar(&parent, "parent", "", "for reheat: the version of the same image it started from (IMAGE-N)")
	f.StringVar(&base, "base", "", "the version of another image line it was built on (IMAGE-N)")
	f.StringArrayVar(&sources, "source", nil, "an input: KIND=REF@sha256:HEX, KIND one of origin, builder-definition, config-code, other (repeatable)")
	f.StringVar(&pkgFile, "packages", "", "package manifest file: JSON array or 'NAME VERSION ARCH' lines (dpkg-query -W output)")
	f.StringArrayVar(&tags, "tag", nil, "free-form tag KEY=VALUE (repeatable)")
	f.StringVar(&builtBy, "built-by", "", "who or what made it (default: the local user)")
	return c
}

func (a *App) versionListCmd() *cobra.Command {
	var (
		statuses, tags []string
		minStatus      string
		limit          int
	)
	c := &cobra.Command{
		Use:   "list IMAGE",
		Short: "List versions of an image, newest first",
		Args:  exactArgs(1, "the image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			f := kiln.VersionFilter{Image: args[0], Limit: limit, Tags: kiln.Tags{}}
			for _, s := range statuses {
				for _, part := range strings.Split(s, ",") {
					st, err := kiln.ParseStatus("--status", part)
					if err != nil {
						return err
					}
					f.Status = append(f.Status, st)
				}
			}
			if minStatus != "" {
				st, err := kiln.ParseStatus("--min-status", minStatus)
				if err != nil {
					return err
				}
				if st.Rank() == 0 {
					return kiln.FieldErrorf(kiln.EINVALID, "--min-status", "%s is not on the pipeline's main line; use candidate, tested or ready (or --status %s)", st, st)
				}
				f.MinStatus = st
			}
			for _, s := range tags {
				k, v, ok := strings.Cut(s, "=")
				if !ok {
					return kiln.FieldErrorf(kiln.EINVALID, "--tag", "tag filter %q has no '='; write KEY=VALUE", s)
				}
				f.Tags[k] = v
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			vs, total, err := reg.ListVersions(cmd.Context(), f)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), orEmpty(vs), func(w io.Writer) error {
				t := newTable(w, "VERSION", "STATUS", "SEMVER", "METHOD", "BASE", "CREATED", "TAGS")
				for _, v := range vs {
					base := ""
					if v.Provenance.Base != nil {
						base = v.Provenance.Base.String()
					}
					t.row(v.Name, string(v.Status), v.FullSemVer(), string(v.Provenance.Method), base,
						v.CreatedAt.UTC().Format(time.RFC3339), formatTags(v.Tags, false))
				}
				if err := t.flush(); err != nil {
					return err
				}
				if total > len(vs) {
					fmt.Fprintf(w, "(%d of %d shown; use --limit)\n", len(vs), total)
				}
				return nil
			})
		},
	}
	c.Flags().StringArrayVar(&statuses, "status", nil, "only versions with this status (repeatable or comma-separated)")
	c.Flags().StringVar(&minStatus, "min-status", "", "only versions at least this far along: candidate < tested < ready")
	c.Flags().StringArrayVar(&tags, "tag", nil, "only versions with this tag KEY=VALUE (repeatable; all must match)")
	c.Flags().IntVar(&limit, "limit", 100, "show at most this many versions (0: all)")
	return c
}

func (a *App) versionLatestCmd() *cobra.Command {
	var status string
	c := &cobra.Command{
		Use:   "latest IMAGE",
		Short: "Print the newest version with at least the given status",
		Args:  exactArgs(1, "the image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var min kiln.Status
			if status != "" {
				st, err := kiln.ParseStatus("--status", status)
				if err != nil {
					return err
				}
				min = st
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			v, err := reg.LatestVersion(cmd.Context(), args[0], min)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), v, func(_ io.Writer) error {
				cmd.Println(v.Name)
				return nil
			})
		},
	}
	c.Flags().StringVar(&status, "status", "ready", "minimum status: candidate, tested or ready")
	return c
}

func (a *App) versionShowCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "show IMAGE-N",
		Short: "Show one version with its provenance, packages and history",
		Args:  exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, v, err := a.findVersion(cmd, args[0])
			if err != nil {
				return err
			}
			hist, err := reg.History(cmd.Context(), v.Ref())
			if err != nil {
				return err
			}
			shown := struct {
				*kiln.Version
				History []*kiln.HistoryEntry `json:"history"`
			}{v, hist}
			return a.render(cmd.OutOrStdout(), shown, func(w io.Writer) error {
				return printVersion(w, v, hist, all)
			})
		},
	}
	c.Flags().BoolVar(&all, "packages", false, "list every package (default: the count only)")
	return c
}

func printVersion(w io.Writer, v *kiln.Version, hist []*kiln.HistoryEntry, allPackages bool) error {
	p := v.Provenance
	fmt.Fprintf(w, "Version:   %s\n", v.Name)
	fmt.Fprintf(w, "Status:    %s\n", v.Status)
	if s := v.FullSemVer(); s != "" {
		fmt.Fprintf(w, "SemVer:    %s\n", s)
	}
	fmt.Fprintf(w, "Created:   %s\n", v.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Tags:      %s\n", formatTags(v.Tags, true))
	fmt.Fprintf(w, "Method:    %s\n", p.Method)
	if p.Parent != nil {
		fmt.Fprintf(w, "Parent:    %s\n", p.Parent)
	}
	if p.Base != nil {
		fmt.Fprintf(w, "Base:      %s\n", p.Base)
	}
	fmt.Fprintf(w, "Built by:  %s\n", p.BuiltBy)
	if !p.StartedAt.IsZero() {
		fmt.Fprintf(w, "Built:     %s → %s (%s)\n", p.StartedAt.UTC().Format(time.RFC3339), p.FinishedAt.UTC().Format(time.RFC3339), p.FinishedAt.Sub(p.StartedAt).Round(time.Second))
	}
	if p.Artifact != nil {
		fmt.Fprintf(w, "Artifact:  %s (%s, %d bytes)\n", p.Artifact.Ref, p.Artifact.Digest, p.Artifact.Size)
		for i, l := range p.Artifact.Layers {
			fmt.Fprintf(w, "  layer %d: %s (%d bytes)\n", i+1, l.Digest, l.Size)
		}
	}
	if len(p.Artifacts) > 0 {
		fmt.Fprintln(w, "Artifacts:")
		t := newTable(w, "  FORMAT", "DIGEST", "SIZE", "REF")
		if p.Artifact != nil && !p.Artifact.External() {
			t.row("  "+string(kiln.FormatRootfs), p.Artifact.Digest, fmt.Sprint(p.Artifact.Size), p.Artifact.Ref)
		}
		for _, x := range p.Artifacts {
			t.row("  "+string(x.Format), x.Digest, fmt.Sprint(x.Size), x.Ref)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if p.SourceDateEpoch != 0 {
		fmt.Fprintf(w, "Epoch:     SOURCE_DATE_EPOCH=%d (%s, from %s)\n", p.SourceDateEpoch, time.Unix(p.SourceDateEpoch, 0).UTC().Format(time.RFC3339), p.SourceDateEpochFrom)
	}
	if r := lastReproduction(hist); r != nil {
		fmt.Fprintf(w, "Reproduced: %s (kiln version rebuild --check, %s by %s)\n", map[string]string{"identical": "yes, bit for bit", "different": "no, the rebuild differed"}[r.To], r.Time.UTC().Format(time.RFC3339), r.Actor)
	} else if p.SourceDateEpoch != 0 && !p.External() {
		fmt.Fprintf(w, "Reproduced: not checked (kiln version rebuild %s --check)\n", v.Name)
	}
	if len(p.Sources) > 0 {
		fmt.Fprintln(w, "Sources:")
		t := newTable(w, "  KIND", "REF", "DIGEST")
		for _, s := range p.Sources {
			t.row("  "+string(s.Kind), s.Ref, s.Digest)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "Packages:  %d\n", len(p.Packages))
	if allPackages && len(p.Packages) > 0 {
		t := newTable(w, "  NAME", "VERSION", "ARCH")
		for _, pk := range p.Packages {
			t.row("  "+pk.Name, pk.Version, pk.Architecture)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(hist) > 0 {
		fmt.Fprintln(w, "History:")
		return printHistory(w, hist, "  ")
	}
	return nil
}

// lastReproduction is the newest rebuild check in a version's history.
func lastReproduction(hist []*kiln.HistoryEntry) *kiln.HistoryEntry {
	var last *kiln.HistoryEntry
	for _, h := range hist {
		if h.Field == "reproduction" {
			last = h
		}
	}
	return last
}

func printHistory(w io.Writer, hist []*kiln.HistoryEntry, indent string) error {
	t := newTable(w, indent+"TIME", "ACTOR", "FIELD", "FROM", "TO", "REASON")
	for _, h := range hist {
		t.row(indent+h.Time.UTC().Format(time.RFC3339), h.Actor, h.Field, h.From, h.To, h.Reason)
	}
	return t.flush()
}

// formatTags renders tags sorted by key; system tags only when withSystem.
func formatTags(tags kiln.Tags, withSystem bool) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		if withSystem || !kiln.IsSystemTag(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ",")
}

func (a *App) versionStatusCmd() *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "status IMAGE-N STATUS",
		Short: "Move a version along its lifecycle (candidate → tested → ready → deprecated → revoked; failed)",
		Args:  exactArgs(2, "a version name and the new status"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, ref, err := a.versionArg(cmd, args[0])
			if err != nil {
				return err
			}
			st, err := kiln.ParseStatus("status", args[1])
			if err != nil {
				return err
			}
			if st == kiln.StatusRevoked {
				return a.revokeByStatus(cmd, reg, ref, reason)
			}
			v, err := reg.SetStatus(cmd.Context(), ref, st, reason)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), v, func(_ io.Writer) error {
				cmd.Printf("%s is now %s\n", v.Name, v.Status)
				return nil
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why, kept in the history")
	return c
}

func (a *App) versionTagCmd() *cobra.Command {
	var (
		remove []string
		reason string
	)
	c := &cobra.Command{
		Use:   "tag IMAGE-N [KEY=VALUE…]",
		Short: "Set or remove free-form tags on a version",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return &usageError{fmt.Errorf("%s needs a version name", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, ref, err := a.versionArg(cmd, args[0])
			if err != nil {
				return err
			}
			upd := kiln.TagUpdate{Set: kiln.Tags{}, Remove: remove, Reason: reason}
			for _, s := range args[1:] {
				k, v, err := kiln.ParseTag("tag", s)
				if err != nil {
					return err
				}
				upd.Set[k] = v
			}
			if len(upd.Set) == 0 && len(upd.Remove) == 0 {
				return &usageError{fmt.Errorf("nothing to do: give KEY=VALUE tags to set or --remove KEY")}
			}
			v, err := reg.UpdateTags(cmd.Context(), ref, upd)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), v, func(_ io.Writer) error {
				cmd.Printf("%s tags: %s\n", v.Name, formatTags(v.Tags, true))
				return nil
			})
		},
	}
	c.Flags().StringArrayVar(&remove, "remove", nil, "remove this tag key (repeatable)")
	c.Flags().StringVar(&reason, "reason", "", "why, kept in the history")
	return c
}

func (a *App) versionHistoryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history IMAGE-N",
		Short: "Show every status and tag change of a version",
		Args:  exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			reg, ref, err := a.versionArg(cmd, args[0])
			if err != nil {
				return err
			}
			hist, err := reg.History(cmd.Context(), ref)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), orEmpty(hist), func(w io.Writer) error {
				return printHistory(w, hist, "")
			})
		},
	}
}

func (a *App) versionLineageCmd() *cobra.Command {
	var outOfDate bool
	c := &cobra.Command{
		Use:   "lineage",
		Short: "Show which images are built on which, and which are out of date with their base",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			ls, err := reg.Lineage(cmd.Context())
			if err != nil {
				return err
			}
			if outOfDate {
				kept := ls[:0]
				for _, l := range ls {
					if l.OutOfDate {
						kept = append(kept, l)
					}
				}
				ls = kept
			}
			return a.render(cmd.OutOrStdout(), orEmpty(ls), func(w io.Writer) error {
				t := newTable(w, "IMAGE", "LATEST", "BUILT ON", "NEWEST READY BASE", "OUT OF DATE")
				for _, l := range ls {
					latest := ""
					if l.LatestBaseReady != nil {
						latest = l.LatestBaseReady.String()
					}
					t.row(l.Child.Image, l.Child.Name, l.Base.String(), latest, strconv.FormatBool(l.OutOfDate))
				}
				return t.flush()
			})
		},
	}
	c.Flags().BoolVar(&outOfDate, "out-of-date", false, "only images whose base has a newer ready version")
	return c
}

func (a *App) versionAttachmentsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "attachments IMAGE-N [NAME]",
		Short: "List the documents kept with a version (build log, test report, signed provenance, SBOMs), or print one",
		Long: "With NAME (test-report.json, build.log, provenance.dsse.json, …) the document's content is printed as it\n" +
			"is kept. `kiln version log IMAGE-N` prints the build log, `kiln version sbom` a verified SBOM.",
		Example: "  kiln version attachments appserver-3\n  kiln version attachments appserver-3 test-report.json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 || len(args) == 2 {
				return nil
			}
			return &usageError{fmt.Errorf("%s needs a version name such as appserver-3, and optionally an attachment's name (got %d argument(s))", cmd.CommandPath(), len(args))}
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			reg, ref, err := a.versionArg(cmd, args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				at, err := reg.Attachment(cmd.Context(), ref, args[1])
				if kiln.ErrorCode(err) == kiln.ENOTFOUND {
					return kiln.Errorf(kiln.ENOTFOUND, "%s has no attachment %q; `kiln version attachments %s` lists what it has", ref, args[1], ref)
				}
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(at.Data)
				return err
			}
			as, err := reg.ListAttachments(cmd.Context(), ref)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), orEmpty(as), func(w io.Writer) error {
				t := newTable(w, "NAME", "MEDIA TYPE", "SIZE", "CREATED")
				for _, at := range as {
					t.row(at.Name, at.MediaType, strconv.FormatInt(at.Size, 10), at.CreatedAt.UTC().Format(time.RFC3339))
				}
				return t.flush()
			})
		},
	}
}
