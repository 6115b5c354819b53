package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
)

// cacheCmd is `kiln cache`: the build cache on this machine (step layers,
// unpacked start layers, downloaded packages). Local only.
func (a *App) cacheCmd() *cobra.Command {
	c := group("cache", "Show or prune the build cache on this machine (layers and downloaded packages)")
	c.AddCommand(a.cacheListCmd(), a.cachePruneCmd())
	return c
}

func (a *App) cacheListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"du"},
		Short:   "List the build cache's layers and packages, least recently used first, with their size",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := build.ListCache(cmd.Context(), svc.DataDir, svc.Artifacts, svc.Registry)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), rep, func(w io.Writer) error {
				printCacheItems(w, rep.Items, false)
				fmt.Fprintf(w, "%d item(s), %s", len(rep.Items), build.FormatBytes(rep.Size))
				if rep.RunningBuilds > 0 {
					fmt.Fprintf(w, "; %d running build(s) hold %d", rep.RunningBuilds, rep.Held)
				}
				fmt.Fprintln(w)
				return nil
			})
		},
	}
}

func (a *App) cachePruneCmd() *cobra.Command {
	var olderThan, keepSize string
	var dryRun bool
	c := &cobra.Command{
		Use:   "prune",
		Short: "Remove cached layers and packages not used for a while, or over a size",
		Long: "Removes cached step layers, unpacked start layers and downloaded packages that no build used for\n" +
			"--older-than, packages the mirror's package lists no longer name, then the least recently used\n" +
			"until the cache takes at most --keep-size. A layer a running build holds is never removed, nor\n" +
			"packages while a build runs, nor any artifact a registered version references: only layer\n" +
			"tarballs the cache alone refers to are deleted from the artifact store. A pruned layer is\n" +
			"built again by the next build that needs it. Safe to interrupt.",
		Example: "  kiln cache prune --older-than 30d\n  kiln cache prune --keep-size 10GiB --dry-run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			opts := build.PruneOptions{DryRun: dryRun, Now: time.Now}
			if olderThan != "" {
				d, err := build.ParseAge(olderThan)
				if err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--older-than", "%v", err)
				}
				// 0 means no age rule to PruneCache; "--older-than 0s"
				// means everything not held.
				opts.OlderThan = max(d, time.Nanosecond)
			}
			if keepSize != "" {
				n, err := build.ParseBytes(keepSize)
				if err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--keep-size", "%v", err)
				}
				if n <= 0 {
					return kiln.FieldErrorf(kiln.EINVALID, "--keep-size", "%q keeps nothing; give a size above 0, or --older-than 0s to remove everything not held", keepSize)
				}
				opts.KeepSize = n
			}
			svc, err := a.Services(cmd.Context())
			if err != nil {
				return err
			}
			opts.Artifacts, opts.Registry = svc.Artifacts, svc.Registry
			rep, err := build.PruneCache(cmd.Context(), svc.DataDir, opts)
			if rep != nil {
				if rerr := a.render(cmd.OutOrStdout(), rep, func(w io.Writer) error {
					printPrune(w, rep)
					return nil
				}); err == nil {
					err = rerr
				}
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&olderThan, "older-than", "", "remove what no build used for this long: 30d, 12h, 1d12h")
	f.StringVar(&keepSize, "keep-size", "", "then remove the least recently used until the cache takes at most this: 10GiB, 500MB")
	f.BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
	return c
}

func printCacheItems(w io.Writer, items []build.CacheItem, reasons bool) {
	head := []string{"KIND", "ID", "NAME", "SIZE", "LAST USED"}
	if reasons {
		head = append(head, "WHY")
	} else {
		head = append(head, "HELD")
	}
	t := newTable(w, head...)
	for _, it := range items {
		id := it.ID
		if it.Kind != build.CacheDeb && it.Kind != build.CacheParsed && len(id) > 12 {
			id = id[:12]
		}
		row := []string{it.Kind, id, it.Name, build.FormatBytes(it.Size), it.LastUsed.Local().Format("2006-01-02 15:04")}
		if reasons {
			row = append(row, it.Reason)
		} else if it.Held {
			row = append(row, "held by a running build")
		} else {
			row = append(row, "")
		}
		t.row(row...)
	}
	_ = t.flush()
}

func printPrune(w io.Writer, rep *build.CacheReport) {
	verb, freed := "removed", "freed"
	if rep.DryRun {
		verb, freed = "would remove", "would free"
	}
	if len(rep.Items) > 0 {
		printCacheItems(w, rep.Items, true)
	}
	fmt.Fprintf(w, "%s %d item(s), %s %s; kept %d (%s)\n", verb, len(rep.Items), freed, build.FormatBytes(rep.Size), rep.Kept, build.FormatBytes(rep.KeptSize))
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
}
